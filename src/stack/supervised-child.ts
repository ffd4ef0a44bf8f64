/**
 * A child process of the stack, kept running: its output is prefixed line by line, and when
 * it dies unexpectedly it is restarted with exponential backoff, saying so in the log. Each
 * child runs in a process group of its own, and whatever it leaves there when it exits is
 * killed, so a restart never finds its predecessor's processes in the way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { LineSplitter } from '../logs/deployment-logs';

/** How to run one child. */
export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Prefix colour (ANSI code) in a terminal. */
  color?: number;
}

/** Restart policy; tests shorten it. */
export interface RestartPolicy {
  baseMs: number;
  maxMs: number;
  /** A child that ran this long before dying restarts after `baseMs` again. */
  stableAfterMs: number;
}

/** The policy `npm start` uses. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { baseMs: 1000, maxMs: 30_000, stableAfterMs: 60_000 };

/**
 * Kills what a child that died left in its process group: the Temporal dev server, say, whose
 * wrapper was killed outright, would otherwise keep the port and make every restart fail.
 */
function killLeftovers(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // nothing left in the group
  }
}

/** One supervised child. */
export class SupervisedChild {
  private child: ChildProcess | undefined;
  private stopping = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private exitWaiters: (() => void)[] = [];
  /** How many times it has been restarted. */
  restarts = 0;

  constructor(
    readonly spec: ChildSpec,
    private readonly write: (line: string) => void,
    private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY,
  ) {}

  /** The running process's pid, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private prefix(): string {
    const label = `[${this.spec.name}]`.padEnd(11);
    return process.stdout.isTTY && this.spec.color ? `\x1b[${this.spec.color}m${label}\x1b[0m` : label;
  }

  /** Starts the child (and keeps it running until stop()). */
  start(): void {
    this.stopping = false;
    this.launch();
  }

  private launch(): void {
    const startedAt = Date.now();
    // detached: its own process group, so a terminal's Ctrl-C reaches only the supervisor.
    const child = spawn(this.spec.command, this.spec.args, {
      env: this.spec.env ?? process.env,
      cwd: this.spec.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      const lines = new LineSplitter();
      stream.on('data', (chunk: Buffer) => {
        for (const line of lines.push(chunk)) this.write(`${this.prefix()} ${line}`);
      });
      stream.on('end', () => {
        for (const line of lines.flush()) this.write(`${this.prefix()} ${line}`);
      });
    }
    child.once('error', (error) => this.write(`${this.prefix()} could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      this.child = undefined;
      killLeftovers(child.pid);
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      if (this.stopping) {
        this.write(`${this.prefix()} stopped (${how})`);
        for (const resolve of this.exitWaiters.splice(0)) resolve();
        return;
      }
      this.failures = Date.now() - startedAt > this.policy.stableAfterMs ? 1 : this.failures + 1;
      const delay = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (this.failures - 1));
      this.write(`${this.prefix()} died (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.launch();
      }, delay);
    });
  }

  /** Stops the child: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    child.kill('SIGTERM');
    const killer = setTimeout(() => {
      this.write(`${this.prefix()} did not stop within ${graceMs / 1000} s: SIGKILL`);
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(killer);
  }
}
