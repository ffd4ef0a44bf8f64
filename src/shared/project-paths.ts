import * as fs from 'node:fs';
import * as path from 'node:path';

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'model-server', 'gantry_model_server.py'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find Gantry's project root above ${from}`);
  }
}

/** The Gantry checkout this code runs from (works from src/ with a loader and from dist/). */
export const PROJECT_ROOT = findProjectRoot(__dirname);

/** The Python model server every replica runs. */
export const MODEL_SERVER_SCRIPT = path.join(PROJECT_ROOT, 'model-server', 'gantry_model_server.py');

/** The directory of the model server (shown read-only to sandboxed model code). */
export const MODEL_SERVER_DIR = path.dirname(MODEL_SERVER_SCRIPT);

/** The sandbox launcher model code runs through when isolation is on (docs/operations.md#model-isolation). */
export const SANDBOX_LAUNCHER_SCRIPT = path.join(PROJECT_ROOT, 'model-server', 'gantry_sandbox.py');

/** The project's virtual environment, where `npm install` puts the Temporal binaries. */
export const PROJECT_VENV_BIN = path.join(PROJECT_ROOT, '.venv', 'bin');

/** The dashboard as `npm run build` bundles it (dashboard/ → dist/dashboard). */
export const DASHBOARD_DIR = path.join(PROJECT_ROOT, 'dist', 'dashboard');
