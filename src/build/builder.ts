/**
 * Builds a deployment: unpacks its archive, checks the package, makes (or reuses) its
 * Python environment and checks that the model imports. Every step is safe to repeat.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar';
import { modelEnvironment } from '../shared/model-environment';
import { MODEL_SERVER_SCRIPT } from '../shared/project-paths';
import type { ModelConfig } from '../shared/schemas';
import { BuildError } from './build-error';
import { readModelPackage, writeServerConfig, type PackageLayout } from './model-package';
import { ensurePythonEnvironment, runStreaming } from './python-environments';

/** What a build needs to know. */
export interface BuildRequest {
  archive: string;
  /** Where the package is unpacked (replaced if it exists). */
  packageDir: string;
  venvsDir: string;
  basePython: string;
  log: (line: string) => void;
  heartbeat?: () => void;
  /** Aborted when the build must stop (deadline or cancellation): the process running is killed with its group, and the build throws the abort reason. */
  signal?: AbortSignal;
}

/** What a successful build produced. */
export interface BuildResult {
  layout: PackageLayout;
  config: ModelConfig;
  envKey: string;
  python: string;
  reusedEnvironment: boolean;
}

/** Unpacks a push archive, refusing links and anything that would land outside `dir`. */
export async function unpackArchive(archive: string, dir: string): Promise<void> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const refused: string[] = [];
  try {
    await tar.x({
      file: archive,
      cwd: dir,
      strict: true,
      preservePaths: false,
      filter: (entryPath, entry) => {
        const type = 'type' in entry ? entry.type : undefined;
        const ok = type === undefined || type === 'File' || type === 'Directory' || type === 'OldFile' || type === 'ContiguousFile';
        if (!ok) refused.push(`${entryPath} (${type})`);
        return ok;
      },
    });
  } catch (error) {
    throw new BuildError('INVALID_ARCHIVE', `the pushed archive could not be unpacked: ${(error as Error).message}`);
  }
  if (refused.length > 0) {
    throw new BuildError('INVALID_ARCHIVE', `the archive holds links or special files, which packages may not: ${refused.slice(0, 5).join(', ')}`);
  }
}

/** The first line the import check wrote to stderr: the cause the model server names. */
function importFailureCause(lines: string[]): string {
  return lines.find((line) => line.trim().length > 0)?.trim() ?? 'the model could not be imported';
}

/** Builds the package from its archive; throws BuildError for anything the user must fix. */
export async function buildModelPackage(request: BuildRequest): Promise<BuildResult> {
  request.log(`unpacking ${path.basename(request.archive)}`);
  await unpackArchive(request.archive, request.packageDir);
  request.signal?.throwIfAborted();

  const pkg = readModelPackage(request.packageDir);
  for (const warning of pkg.warnings) request.log(`warning: ${warning}`);
  request.log(`package: ${pkg.layout === 'bare' ? 'bare predict.py' : `class ${pkg.config.model_class_name} in ${pkg.modelFile}`}`);
  writeServerConfig(request.packageDir, pkg);

  const environment = await ensurePythonEnvironment({
    venvsDir: request.venvsDir,
    basePython: request.basePython,
    requirements: pkg.config.requirements,
    log: request.log,
    heartbeat: request.heartbeat,
    signal: request.signal,
  });

  request.log('checking that the model imports');
  const errors: string[] = [];
  const code = await runStreaming(environment.python, ['-u', MODEL_SERVER_SCRIPT, 'check', '--package', request.packageDir], {
    cwd: request.packageDir,
    env: modelEnvironment(process.env, pkg.config.environment_variables, { PYTHONDONTWRITEBYTECODE: '1' }),
    onLine: request.log,
    onStderrLine: (line) => errors.push(line),
    heartbeat: request.heartbeat,
    signal: request.signal,
  });
  if (code !== 0) {
    throw new BuildError('IMPORT_FAILED', `the model does not import: ${importFailureCause(errors)}`);
  }
  return {
    layout: pkg.layout,
    config: pkg.config,
    envKey: environment.key,
    python: environment.python,
    reusedEnvironment: environment.reused,
  };
}
