/**
 * Model code in a sandbox: each model's processes (replicas, pip, the build's import check)
 * run through model-server/gantry_sandbox.py as an unprivileged uid of their own, in a mount
 * namespace where GANTRY_HOME is an empty tmpfs with only their package, their virtual
 * environment and a scratch directory bound back (docs/operations.md#model-isolation).
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type IsolationMode, SANDBOX_UID_MAX, SANDBOX_UIDS_PER_HOME } from '../shared/isolation';
import { MODEL_SERVER_DIR, SANDBOX_LAUNCHER_SCRIPT } from '../shared/project-paths';

/** A working sandbox: how to launch model code in it. */
export interface Sandbox {
  /** The base interpreter (GANTRY_PYTHON) the launcher runs with, as root; venvs are made from it. */
  python: string;
  /** GANTRY_HOME, covered by an empty tmpfs in every sandbox. */
  home: string;
  /** The uid of offset 0 (GANTRY_SANDBOX_UID_BASE); offset 0 itself is the start-up probe's. */
  uidBase: number;
}

/** One launch: who runs the command and what it sees besides the machine's world-readable files. */
export interface SandboxedRun {
  uid: number;
  /** Directories shown read-only (the package, the virtual environment). */
  readOnly: string[];
  /** Directories shown writable (the virtual environment pip installs into). */
  writable?: string[];
  /** The working directory, inside what is shown. */
  cwd: string;
}

/** Raised when GANTRY_ISOLATION=sandbox and the machine cannot sandbox. */
export class IsolationUnavailableError extends Error {
  override name = 'IsolationUnavailableError';
}

/** The uid (and gid) of the sandbox user with this offset (a model's, or a build's). */
export function sandboxUid(sandbox: Sandbox, offset: number): number {
  if (offset >= SANDBOX_UIDS_PER_HOME) {
    throw new Error(`this GANTRY_HOME has given out all its ${SANDBOX_UIDS_PER_HOME} sandbox uids from ${sandbox.uidBase}: set GANTRY_SANDBOX_UID_BASE to a fresh range`);
  }
  const uid = sandbox.uidBase + offset;
  if (uid > SANDBOX_UID_MAX) {
    throw new Error(`sandbox uid ${uid} is past the last valid uid ${SANDBOX_UID_MAX}: lower GANTRY_SANDBOX_UID_BASE (${sandbox.uidBase})`);
  }
  return uid;
}

/** The scratch directory of a sandbox uid: its HOME and TMPDIR (pip's cache too), owned by it. */
export function scratchDir(sandbox: Sandbox, uid: number): string {
  return path.join(sandbox.home, 'sandbox', String(uid));
}

/** The variables a sandboxed process gets on top of the model environment: HOME and TMPDIR in its scratch directory. */
export function sandboxVariables(sandbox: Sandbox, uid: number): Record<string, string> {
  const scratch = scratchDir(sandbox, uid);
  return { HOME: scratch, TMPDIR: scratch };
}

/** The search path the launcher itself runs with (it runs as root: nothing of the model's environment reaches it). */
const LAUNCHER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The variable that carries the command's environment, as JSON, through the launcher (which applies it only at the exec, as the uid). */
export const SANDBOX_ENV_VARIABLE = 'GANTRY_SANDBOX_ENV';

/**
 * The command line and environment that run `command args` with the environment `env` in the
 * sandbox `run` describes. The launcher runs as root, so its own environment is fixed (no PATH,
 * LD_PRELOAD or other variable a model's config could set reaches it); `env` travels as JSON in
 * one variable and becomes the command's environment at the exec, after privileges are dropped.
 */
export function sandboxedCommand(
  sandbox: Sandbox,
  run: SandboxedRun,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const shown = [...run.readOnly, MODEL_SERVER_DIR].flatMap((dir) => ['--ro', dir]);
  const writable = (run.writable ?? []).flatMap((dir) => ['--rw', dir]);
  return {
    command: sandbox.python,
    args: [
      '-I',
      '-S',
      SANDBOX_LAUNCHER_SCRIPT,
      'run',
      '--uid',
      String(run.uid),
      '--gid',
      String(run.uid),
      '--hide',
      sandbox.home,
      ...shown,
      ...writable,
      '--scratch',
      scratchDir(sandbox, run.uid),
      '--cwd',
      run.cwd,
      '--',
      command,
      ...args,
    ],
    env: { PATH: LAUNCHER_PATH, [SANDBOX_ENV_VARIABLE]: JSON.stringify(env) },
  };
}

/** A sandbox and the uid that model code runs as in it. */
export interface SandboxUser {
  sandbox: Sandbox;
  uid: number;
}

/**
 * The command line and environment that run model code `command args` with the environment
 * `env`: in the sandbox as `user.uid`, seeing what `view` shows, with HOME and TMPDIR in the uid's
 * scratch directory; as it is when isolation is off (`user` undefined).
 */
export function modelCodeCommand(
  user: SandboxUser | undefined,
  view: Omit<SandboxedRun, 'uid'>,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (!user) return { command, args, env };
  return sandboxedCommand(user.sandbox, { ...view, uid: user.uid }, command, args, { ...env, ...sandboxVariables(user.sandbox, user.uid) });
}

/** Runs the launcher to its end; resolves with its exit code and what it wrote to stderr. */
function runLauncher(python: string, args: string[], timeoutMs: number): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(python, ['-I', '-S', SANDBOX_LAUNCHER_SCRIPT, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stderr: error.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stderr: stderr.trim() });
    });
  });
}

/**
 * Shows `dir` read-only inside the running sandbox of process `pid` (a development replica
 * about to reload a new code revision, which lives in a directory of its own).
 */
export async function exposeInSandbox(sandbox: Sandbox, pid: number, dir: string): Promise<void> {
  const { code, stderr } = await runLauncher(sandbox.python, ['expose', '--pid', String(pid), '--ro', dir], 30_000);
  if (code !== 0) throw new Error(`could not show ${dir} to the replica's sandbox: ${stderr || `exit ${code}`}`);
}

/** Why the sandbox cannot run here, or undefined when a trivial command ran in it as an unprivileged uid. */
export async function probeSandbox(python: string, home: string, uidBase: number): Promise<string | undefined> {
  if (process.platform !== 'linux') return `it needs Linux (this is ${process.platform})`;
  const uid = process.getuid?.();
  if (uid !== 0) return `Gantry runs as uid ${uid}, not root: switching model code to users of its own needs root`;
  const { code, stderr } = await runLauncher(python, ['probe', '--uid', String(uidBase), '--gid', String(uidBase), '--hide', home], 30_000);
  if (code !== 0) return `the sandbox probe failed (${stderr || `exit ${code}`})`;
  return undefined;
}

/** The real path of an interpreter given by name or through a shim (pyenv's `python3`): its `sys.executable`. */
export function realInterpreter(python: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, ['-I', '-S', '-c', 'import sys; print(sys.executable)'], { env: { PATH: process.env.PATH ?? LAUNCHER_PATH } }, (error, stdout) => {
      const found = stdout.trim();
      if (error || !path.isAbsolute(found)) reject(new Error(`${python} does not tell its own path: ${error?.message ?? (found || 'no output')}`));
      else resolve(found);
    });
  });
}

/** Which isolation is in use, and the line that says so at start. */
export interface ResolvedIsolation {
  sandbox: Sandbox | undefined;
  level: 'info' | 'warn';
  message: string;
}

/**
 * Probes the sandbox once and decides, per GANTRY_ISOLATION: `auto` sandboxes when it can and
 * warns when it cannot, `sandbox` throws IsolationUnavailableError when it cannot, `off` never sandboxes.
 */
export async function resolveIsolation(mode: IsolationMode, python: string, home: string, uidBase: number): Promise<ResolvedIsolation> {
  if (mode === 'off') {
    return {
      sandbox: undefined,
      level: 'warn',
      message: "model isolation is off (GANTRY_ISOLATION=off): model code runs as Gantry's own user and can read GANTRY_HOME (the database, key files, other models)",
    };
  }
  const problem = await probeSandbox(python, home, uidBase);
  if (problem === undefined) {
    return {
      // The interpreter by its real path: the launcher is started with a fixed PATH of its own.
      sandbox: { python: await realInterpreter(python), home, uidBase },
      level: 'info',
      message: `model isolation: sandbox (mount namespace with GANTRY_HOME hidden, an unprivileged uid per model and per build from ${uidBase}, no capabilities)`,
    };
  }
  if (mode === 'sandbox') {
    throw new IsolationUnavailableError(
      `GANTRY_ISOLATION=sandbox, but model code cannot be sandboxed here: ${problem}. Run Gantry as root on Linux, or set GANTRY_ISOLATION=auto or off`,
    );
  }
  return {
    sandbox: undefined,
    level: 'warn',
    message: `model isolation unavailable: ${problem}. Model code runs as Gantry's own user and can read GANTRY_HOME (the database, key files, other models); run Gantry as root on Linux to fence it off (docs/operations.md#model-isolation), or set GANTRY_ISOLATION=off to say this is intended`,
  };
}

/**
 * Makes a tree inside GANTRY_HOME readable by every sandbox that is shown it and writable by
 * none: owned by root, files a+r (a+x when executable), directories a+rx, no write, set-id or
 * sticky bit for anyone but root. Links are re-owned, never followed.
 */
export function shareReadOnly(dir: string): void {
  walk(dir, (file, stats) => {
    if (stats.uid !== 0 || stats.gid !== 0) fs.lchownSync(file, 0, 0);
    if (stats.isSymbolicLink()) return;
    const executable = stats.isDirectory() || (stats.mode & 0o111) !== 0;
    const mode = 0o644 | (executable ? 0o111 : 0);
    if ((stats.mode & 0o7777) !== mode) fs.chmodSync(file, mode);
  });
}

/**
 * Makes an unpacked package ready for sandboxes (shareReadOnly) when Gantry runs as root, the
 * only case where model code may run as another uid; otherwise leaves it as it is.
 */
export function shareWithSandboxes(dir: string): void {
  if (process.getuid?.() === 0) shareReadOnly(dir);
}

/**
 * Kills every process running as `uid` (a build's uid: nothing of it may outlive the build, not
 * even a process that left its process group), round after round until none is left.
 */
export async function endProcessesOf(uid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = processesOf(uid);
    if (found.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${found.length} processes of sandbox uid ${uid} would not end (pids ${found.slice(0, 5).join(', ')})`);
    for (const pid of found) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The live (not zombie) processes whose real, effective or saved uid is `uid`, read from /proc. */
function processesOf(uid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue; // ended while we looked
    }
    if (/^State:\s+Z/m.test(status)) continue;
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
    if (uids?.slice(1, 4).some((value) => Number(value) === uid)) found.push(Number(entry));
  }
  return found;
}

/** Ends a build's sandbox user: kills what is left of its processes, then removes its scratch directory. */
export async function endBuildUser(sandbox: Sandbox, uid: number): Promise<void> {
  await endProcessesOf(uid);
  fs.rmSync(scratchDir(sandbox, uid), { recursive: true, force: true });
}

/** Gives a tree to a sandbox uid (pip installing into a new virtual environment); links are re-owned, never followed. */
export function giveTree(dir: string, uid: number): void {
  walk(dir, (file) => fs.lchownSync(file, uid, uid));
}

function walk(dir: string, visit: (file: string, stats: fs.Stats) => void): void {
  const stats = fs.lstatSync(dir);
  visit(dir, stats);
  if (!stats.isDirectory()) return;
  for (const entry of fs.readdirSync(dir)) walk(path.join(dir, entry), visit);
}
