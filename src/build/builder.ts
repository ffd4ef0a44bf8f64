/**
 * Builds a deployment: unpacks its archive, checks the package, makes (or reuses) its
 * Python environment and checks that the model imports. Every step is safe to repeat.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar';
import { modelEnvironment } from '../shared/model-environment';
import type { PackageLimits } from '../shared/constants';
import { MODEL_SERVER_SCRIPT } from '../shared/project-paths';
import { endBuildUser, modelCodeCommand, type SandboxUser, shareWithSandboxes } from '../sandbox/sandbox';
import type { ModelConfig } from '../shared/schemas';
import { BuildError } from './build-error';
import { type ModelPackage, readModelPackage, writeServerConfig, type PackageLayout } from './model-package';
import { ensurePythonEnvironment, runStreaming } from './python-environments';
import { refusedRequirement } from './requirement-options';

/** What a build needs to know. */
export interface BuildRequest {
  archive: string;
  /** Where the package is unpacked (replaced if it exists). */
  packageDir: string;
  venvsDir: string;
  basePython: string;
  /** How much the package may unpack to. */
  limits: PackageLimits;
  log: (line: string) => void;
  heartbeat?: () => void;
  /** Aborted when the build must stop (deadline or cancellation): the process running is killed with its group, and the build throws the abort reason. */
  signal?: AbortSignal;
  /**
   * The sandbox pip and the import check run in, as this build's own uid, whose processes are all
   * killed and whose scratch directory is removed when the build ends (undefined: isolation is off).
   */
  sandbox?: SandboxUser;
  /** The pip options requirement lines may use (GANTRY_PIP_ALLOWED_OPTIONS; none when not given). */
  pipAllowedOptions?: string[];
}

/** What a successful build produced. */
export interface BuildResult {
  layout: PackageLayout;
  config: ModelConfig;
  envKey: string;
  python: string;
  reusedEnvironment: boolean;
}

/** What the limits are called where an operator sets them (docs/configuration.md). */
const UNPACKED_BYTES_SETTING = 'GANTRY_PACKAGE_MAX_UNPACKED_BYTES';
const FILES_SETTING = 'GANTRY_PACKAGE_MAX_FILES';

/**
 * Unpacks a push archive, refusing links, absolute or `..` paths, and a
 * package past `limits`: each entry is counted from its header before a byte of it is written,
 * so the unpacking stops with at most `limits` on disk, and what was unpacked is removed.
 */
export async function unpackArchive(archive: string, dir: string, limits: PackageLimits): Promise<void> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const refused: string[] = [];
  let entries = 0;
  let bytes = 0;
  let overLimit: BuildError | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const input = fs.createReadStream(archive);
      const unpack = new tar.Unpack({
        cwd: dir,
        strict: true,
        preservePaths: false,
        // Files belong to the user that builds (never the archive's uid, which could be a model's).
        preserveOwner: false,
        filter: (entryPath, entry) => {
          if (overLimit) return false;
          const type = 'type' in entry ? entry.type : undefined;
          const ok = type === undefined || type === 'File' || type === 'Directory' || type === 'OldFile' || type === 'ContiguousFile';
          if (!ok) {
            refused.push(`${entryPath} (${type})`);
            return false;
          }
          if (path.isAbsolute(entryPath) || entryPath.split(/[\\/]/).includes('..')) {
            refused.push(`${entryPath} (a path outside the package)`);
            return false;
          }
          entries += 1;
          bytes += entry.size ?? 0;
          if (entries > limits.maxFiles) {
            overLimit = new BuildError(
              'INVALID_ARCHIVE',
              `the package holds more than ${limits.maxFiles.toLocaleString('en')} files and folders (${FILES_SETTING}); unpacking stopped and was removed`,
            );
          } else if (bytes > limits.maxUnpackedBytes) {
            overLimit = new BuildError(
              'INVALID_ARCHIVE',
              `the package unpacks to more than ${formatBytes(limits.maxUnpackedBytes)} (${UNPACKED_BYTES_SETTING}), at ${entryPath}; unpacking stopped and was removed`,
            );
          }
          if (overLimit) {
            // Stop reading: nothing more is decompressed or written.
            input.destroy();
            unpack.abort(overLimit);
            return false;
          }
          return true;
        },
      });
      unpack.on('error', reject);
      unpack.on('close', () => resolve());
      input.on('error', reject);
      input.pipe(unpack);
    });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    if (overLimit) throw overLimit;
    const message = (error as Error).message;
    if (/max decompression ratio exceeded/.test(message)) {
      throw new BuildError(
        'INVALID_ARCHIVE',
        `the pushed archive was refused: it decompresses more than 1000 times over, as a compression bomb does (${message}); unpacking stopped and was removed`,
      );
    }
    throw new BuildError('INVALID_ARCHIVE', `the pushed archive could not be unpacked: ${message}`);
  }
  if (overLimit) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw overLimit;
  }
  if (refused.length > 0) {
    throw new BuildError('INVALID_ARCHIVE', `the archive holds links, special files or paths outside the package, which packages may not: ${refused.slice(0, 5).join(', ')}`);
  }
}

/** A byte count as an operator reads it (GiB, MiB or KiB). */
function formatBytes(count: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (count >= size) return `${Number((count / size).toFixed(1))} ${unit}`;
  }
  return `${count} bytes`;
}

/** The first line the import check wrote to stderr: the cause the model server names. */
function importFailureCause(lines: string[]): string {
  return lines.find((line) => line.trim().length > 0)?.trim() ?? 'the model could not be imported';
}

/** Builds the package from its archive; throws BuildError for anything the user must fix. */
export async function buildModelPackage(request: BuildRequest): Promise<BuildResult> {
  request.log(`unpacking ${path.basename(request.archive)}`);
  await unpackArchive(request.archive, request.packageDir, request.limits);
  request.signal?.throwIfAborted();

  const pkg = readModelPackage(request.packageDir);
  for (const warning of pkg.warnings) request.log(`warning: ${warning}`);
  request.log(`package: ${pkg.layout === 'bare' ? 'bare predict.py' : `class ${pkg.config.model_class_name} in ${pkg.modelFile}`}`);
  writeServerConfig(request.packageDir, pkg);
  // Readable by the model's sandbox, writable by nobody but Gantry.
  shareWithSandboxes(request.packageDir);

  const refusal = refusedRequirement(pkg.config.requirements, request.pipAllowedOptions ?? []);
  if (refusal !== undefined) throw new BuildError('REQUIREMENT_REFUSED', refusal);

  try {
    return await installAndCheck(request, pkg);
  } finally {
    // Nothing the build's code started outlives the build (a process that left its group too).
    if (request.sandbox) await endBuildUser(request.sandbox.sandbox, request.sandbox.uid);
  }
}

/** Makes (or reuses) the package's Python environment and checks that the model imports in it. */
async function installAndCheck(request: BuildRequest, pkg: ModelPackage): Promise<BuildResult> {
  const environment = await ensurePythonEnvironment({
    venvsDir: request.venvsDir,
    basePython: request.basePython,
    requirements: pkg.config.requirements,
    log: request.log,
    heartbeat: request.heartbeat,
    signal: request.signal,
    sandbox: request.sandbox,
  });

  request.log('checking that the model imports');
  const errors: string[] = [];
  const checkArgs = ['-u', MODEL_SERVER_SCRIPT, 'check', '--package', request.packageDir];
  const check = modelCodeCommand(
    request.sandbox,
    { readOnly: [request.packageDir, environment.dir], cwd: request.packageDir },
    environment.python,
    checkArgs,
    modelEnvironment(process.env, pkg.config.environment_variables, { PYTHONDONTWRITEBYTECODE: '1' }),
  );
  const code = await runStreaming(check.command, check.args, {
    cwd: request.packageDir,
    env: check.env,
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
