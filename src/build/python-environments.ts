/**
 * Python virtual environments for replicas, one per distinct requirements set, cached by
 * key under GANTRY_HOME/venvs so that a second push with the same requirements installs
 * nothing. An environment is built in a scratch directory and renamed into place when
 * complete, so a crash or a concurrent build never leaves a half-made one in use.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LineSplitter } from '../logs/deployment-logs';
import { BuildError } from './build-error';
import { modelEnvironment } from '../shared/model-environment';
import { endProcessesOf, giveTree, modelCodeCommand, type SandboxUser, shareReadOnly } from '../sandbox/sandbox';

/** A ready environment. */
export interface PythonEnvironment {
  key: string;
  dir: string;
  python: string;
  /** Whether it already existed (nothing was installed). */
  reused: boolean;
}

/** What building an environment needs. */
export interface EnvironmentRequest {
  venvsDir: string;
  /** The interpreter environments are made from (GANTRY_PYTHON). */
  basePython: string;
  requirements: string[];
  /** Receives every line of output (venv, pip). */
  log: (line: string) => void;
  /** Called now and then during long installs, to show liveness. */
  heartbeat?: () => void;
  /** Aborted when the build must stop (its deadline passed, or it was cancelled): what runs is killed. */
  signal?: AbortSignal;
  /**
   * The sandbox pip runs in, as this build's own uid, seeing only the environment it installs
   * into (writable) and its scratch directory (its cache and temporary files).
   */
  sandbox?: SandboxUser;
}

/** The file a complete environment holds (written last); its modification time is when the environment was last seen in use. */
export const COMPLETE_MARKER = '.gantry-complete';

/**
 * Records that a complete environment is in use now (its marker's modification time, which
 * restarts its retention); false when it is not built (yet, or any more).
 */
export function markEnvironmentUsed(venvsDir: string, key: string, now = new Date()): boolean {
  try {
    fs.utimesSync(path.join(environmentDir(venvsDir, key), COMPLETE_MARKER), now, now);
    return true;
  } catch {
    return false;
  }
}

/** The python executable inside an environment directory. */
export function environmentPython(dir: string): string {
  return path.join(dir, 'bin', 'python');
}

/** The directory of the environment with this key. */
export function environmentDir(venvsDir: string, key: string): string {
  return path.join(venvsDir, key);
}

/**
 * Runs a command in a process group of its own, streaming its output lines; resolves with its
 * exit code. When `signal` aborts, the whole group (the command and everything it started: pip's
 * build backends, a model's subprocesses) is killed and the promise rejects with the abort reason.
 */
export function runStreaming(
  command: string,
  args: string[],
  options: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    onLine: (line: string) => void;
    /** Also receives the lines of standard error alone. */
    onStderrLine?: (line: string) => void;
    heartbeat?: () => void;
    signal?: AbortSignal;
  },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    // Without the worker's own secrets (GANTRY_*, TEMPORAL_*): pip runs packages' build code.
    // detached: the command leads a process group, so that killing the group reaches all it started.
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? modelEnvironment(process.env, {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // nothing left in the group
      }
    };
    const onAbort = (): void => killGroup();
    signal?.addEventListener('abort', onAbort, { once: true });
    const out = new LineSplitter();
    const err = new LineSplitter();
    const beat = options.heartbeat ? setInterval(options.heartbeat, 5000) : undefined;
    const finish = (): void => {
      if (beat) clearInterval(beat);
      signal?.removeEventListener('abort', onAbort);
    };
    child.stdout.on('data', (chunk) => out.push(chunk).forEach(options.onLine));
    const onStderr = (line: string): void => {
      options.onStderrLine?.(line);
      options.onLine(line);
    };
    child.stderr.on('data', (chunk) => err.push(chunk).forEach(onStderr));
    child.on('error', (error) => {
      finish();
      reject(error);
    });
    // Whatever the command left running in its group (a daemonised helper) ends with it.
    child.on('exit', () => killGroup());
    child.on('close', (code, signalName) => {
      finish();
      out.flush().forEach(options.onLine);
      err.flush().forEach(onStderr);
      if (signal?.aborted) reject(signal.reason);
      else resolve(code ?? (signalName ? 128 : 1));
    });
  });
}

const versionCache = new Map<string, string>();

/** The interpreter's `sys.version` (cached per interpreter). */
export async function pythonVersion(basePython: string): Promise<string> {
  const cached = versionCache.get(basePython);
  if (cached) return cached;
  let output = '';
  const code = await runStreaming(basePython, ['-c', 'import sys; print(sys.version)'], { onLine: (l) => (output += l) });
  if (code !== 0) throw new Error(`${basePython} does not run (exit ${code})`);
  versionCache.set(basePython, output.trim());
  return output.trim();
}

/** Normalises a requirements list so that order, duplicates and spacing do not change the key. */
export function normaliseRequirements(requirements: string[]): string[] {
  return [...new Set(requirements.map((r) => r.trim().replace(/\s+/g, ' ')).filter((r) => r.length > 0))].sort();
}

/** The cache key of a requirements set on a given interpreter. */
export function environmentKey(version: string, requirements: string[]): string {
  return createHash('sha256')
    .update(JSON.stringify({ python: version, requirements: normaliseRequirements(requirements) }))
    .digest('hex')
    .slice(0, 20);
}

/** The most telling line of pip's failure output. */
export function pipFailureCause(lines: string[]): string {
  const errorLines = lines.filter((line) => /^ERROR:/.test(line.trim()));
  const first = errorLines.find((line) => /No matching distribution|Could not find a version|requires a different Python|ResolutionImpossible|Invalid requirement/i.test(line));
  return (first ?? errorLines[0] ?? lines[lines.length - 1] ?? 'pip failed').trim().replace(/^ERROR:\s*/, '');
}

/** Whether the environment for these requirements on this interpreter is built (so nothing would be installed). */
export async function cachedEnvironmentKey(venvsDir: string, basePython: string, requirements: string[]): Promise<{ key: string; built: boolean }> {
  const key = environmentKey(await pythonVersion(basePython), normaliseRequirements(requirements));
  return { key, built: fs.existsSync(path.join(environmentDir(venvsDir, key), COMPLETE_MARKER)) };
}

/** Returns the environment for these requirements, building it if it is not cached yet. */
export async function ensurePythonEnvironment(request: EnvironmentRequest): Promise<PythonEnvironment> {
  const version = await pythonVersion(request.basePython);
  const requirements = normaliseRequirements(request.requirements);
  const key = environmentKey(version, requirements);
  const dir = environmentDir(request.venvsDir, key);
  // In use again from now: its retention (environment-collection.ts) starts over.
  if (markEnvironmentUsed(request.venvsDir, key)) {
    request.log(`reusing Python environment ${key} (requirements unchanged, nothing to install)`);
    return { key, dir, python: environmentPython(dir), reused: true };
  }

  fs.mkdirSync(request.venvsDir, { recursive: true });
  const scratch = path.join(request.venvsDir, `.${key}.${randomBytes(4).toString('hex')}.partial`);
  try {
    request.log(`creating Python environment ${key} (${version.split(' ')[0]})`);
    const venvArgs = ['-m', 'venv', ...(requirements.length === 0 ? ['--without-pip'] : []), scratch];
    const venvCode = await runStreaming(request.basePython, venvArgs, { onLine: request.log, heartbeat: request.heartbeat, signal: request.signal });
    if (venvCode !== 0) throw new Error(`${request.basePython} -m venv failed with exit code ${venvCode}`);

    if (requirements.length > 0) {
      const requirementsFile = path.join(scratch, 'requirements.txt');
      fs.writeFileSync(requirementsFile, `${requirements.join('\n')}\n`);
      request.log(`installing ${requirements.length} requirement(s): ${requirements.join(', ')}`);
      const pipOutput: string[] = [];
      const pipArgs = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--progress-bar', 'off', '-r', requirementsFile];
      const sandbox = request.sandbox;
      // In the sandbox, the environment is the build uid's while pip runs, and Gantry's again after.
      if (sandbox) giveTree(scratch, sandbox.uid);
      // Without the worker's own settings and secrets (GANTRY_*, TEMPORAL_*): build backends run arbitrary code.
      const pip = modelCodeCommand(sandbox, { readOnly: [], writable: [scratch], cwd: scratch }, environmentPython(scratch), pipArgs, modelEnvironment(process.env, {}));
      const pipCode = await runStreaming(pip.command, pip.args, {
        env: pip.env,
        onLine: (line) => {
          pipOutput.push(line);
          request.log(line);
        },
        heartbeat: request.heartbeat,
        signal: request.signal,
      });
      if (pipCode !== 0) {
        throw new BuildError('REQUIREMENT_FAILED', `a requirement did not install: ${pipFailureCause(pipOutput)}`);
      }
    }
    if (request.sandbox) {
      // Nothing of pip's may still run (a build backend that left its process group) while the
      // tree is taken back: it could swap a file for a link the walk then follows.
      await endProcessesOf(request.sandbox.uid);
      // Readable by every sandbox shown it, writable by none (pip's uid included).
      shareReadOnly(scratch);
    }
    fs.writeFileSync(path.join(scratch, COMPLETE_MARKER), `${JSON.stringify({ python: version, requirements })}\n`);
    // A venv finds its prefix from pyvenv.cfg beside bin/python, so renaming it is safe for
    // `python` (console-script shebangs keep the scratch path; replicas never run those).
    // A concurrent build of the same key may have won the rename: then use its result.
    try {
      fs.renameSync(scratch, dir);
    } catch (error) {
      if (!fs.existsSync(path.join(dir, COMPLETE_MARKER))) throw error;
    }
    return { key, dir, python: environmentPython(dir), reused: false };
  } finally {
    await removeScratch(scratch, request.sandbox?.uid);
  }
}

/**
 * Removes a build's scratch environment. When pip ran in it as a sandbox uid, every process of
 * that uid is ended first: one left running (a build backend that left its process group) could
 * otherwise swap a directory for a link while root removes the tree, and root would follow it.
 * When they cannot all be ended, the tree is left (still the uid's) for the node's collector.
 */
async function removeScratch(scratch: string, uid: number | undefined): Promise<void> {
  if (uid !== undefined) {
    try {
      await endProcessesOf(uid);
    } catch {
      return;
    }
  }
  fs.rmSync(scratch, { recursive: true, force: true });
}
