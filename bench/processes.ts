/**
 * The bench's child processes (load clients, nginx), tracked so that every one of them is ended
 * on any exit: success, failure or Ctrl-C. Also reads the CPU time of a process tree, which the
 * bench uses to check that every replica took its share of a load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

/** The child processes still running, to end on the bench's exit. */
export class ChildProcesses {
  private readonly running = new Set<ChildProcess>();
  private ending = false;

  /** Starts `command` and tracks it until it exits; throws once `endAll` was called. */
  spawn(command: string, args: string[]): ChildProcess {
    if (this.ending) throw new Error(`not starting ${command}: the bench is ending`);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.running.add(child);
    child.on('exit', () => this.running.delete(child));
    child.on('error', () => this.running.delete(child));
    return child;
  }

  /** Sends SIGTERM to every child still running, waits up to `graceMs` for them, then SIGKILLs the rest. */
  async endAll(graceMs = 3000): Promise<void> {
    this.ending = true;
    const children = [...this.running];
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** Runs `command` to its end and resolves with its stdout; rejects with its output when it fails (unless `allowFailure`). */
export function runToCompletion(processes: ChildProcesses, command: string, args: string[], options: { allowFailure?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = processes.spawn(command, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => reject(new Error(`${command}: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0 || options.allowFailure) resolve(stdout + stderr);
      else reject(new Error(`${command} ${args.join(' ')} ended with ${signal ?? `exit code ${code}`}\n${stdout}${stderr}`));
    });
  });
}

/** The CPU time (user + system, in clock ticks) of process `pid` and all its descendants, read from /proc. */
export function processTreeCpuTicks(pid: number): number {
  const stats = new Map<number, { parent: number; ticks: number }>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state, ppid, … utime (14th), stime (15th).
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(entry), { parent: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // The process ended while /proc was being read.
    }
  }
  let total = 0;
  const pending = [pid];
  while (pending.length > 0) {
    const current = pending.pop()!;
    total += stats.get(current)?.ticks ?? 0;
    for (const [child, stat] of stats) if (stat.parent === current) pending.push(child);
  }
  return total;
}

/** Cleanup steps run once, newest first, on any exit of the bench; a failing step does not stop the others. */
export class CleanupSteps {
  private readonly steps: { what: string; run: () => Promise<void> | void }[] = [];
  private running: Promise<void> | undefined;

  /** Adds a step to run at cleanup. */
  add(what: string, run: () => Promise<void> | void): void {
    this.steps.push({ what, run });
  }

  /** Runs every step, newest first; a second call waits for the first. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        try {
          await step.run();
        } catch (error) {
          process.stderr.write(`cleanup: ${step.what} failed: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }
    })();
    return this.running;
  }
}

/**
 * Runs a bench to its report: stdout gets the report, stderr the failure; every child process is
 * ended, then the cleanup steps run, on success, failure, Ctrl-C and SIGTERM. Exits the process
 * (0, 1 on failure, 130 when interrupted).
 */
export async function runBenchToReport(run: (processes: ChildProcesses, cleanup: CleanupSteps) => Promise<string>): Promise<void> {
  const processes = new ChildProcesses();
  const cleanup = new CleanupSteps();
  // The load clients and nginx end first, then the node and its replicas, then the directory goes.
  const cleanUp = async (): Promise<void> => {
    await processes.endAll();
    await cleanup.runAll();
  };
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      process.stderr.write(`\n${signal}: cleaning up\n`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  // After an interruption the signal handler ends the process: no report, no second error.
  try {
    const report = await run(processes, cleanup);
    if (interrupted) return;
    await cleanUp();
    process.stdout.write(`${report}\n`);
    process.exit(0);
  } catch (error) {
    if (interrupted) return;
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await cleanUp();
    process.exit(1);
  }
}
