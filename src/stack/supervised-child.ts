/**
 * A child process of the stack, kept running: its output is printed line by line as JSON log
 * lines (or pretty-printed, see child-output.ts), and when
 * it dies unexpectedly it is restarted with exponential backoff, saying so in the log. Each
 * child runs in a process group of its own, and whatever it leaves there when it exits is
 * killed, so a restart never finds its predecessor's processes in the way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { LineSplitter } from '../logs/deployment-logs';
import { ChildOutput } from './child-output';

/** How to run one child. */
export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
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
    private readonly output: ChildOutput = new ChildOutput('json'),
  ) {}

  /** The running process's pid, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Says something about the child, as a line of the supervisor's (`child` names it). */
  private say(level: 'info' | 'warn' | 'error', msg: string): void {
    const line = this.output.ownLine(level, `${this.spec.name} ${msg}`, { child: this.spec.name });
    if (line !== undefined) this.write(line);
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
    for (const [name, stream] of [
      ['stdout', child.stdout!],
      ['stderr', child.stderr!],
    ] as const) {
      const lines = new LineSplitter();
      const print = (line: string): void => {
        const printed = line.length > 0 ? this.output.childLine(this.spec.name, name, line) : undefined;
        if (printed !== undefined) this.write(printed);
      };
      stream.on('data', (chunk: Buffer) => {
        for (const line of lines.push(chunk)) print(line);
      });
      stream.on('end', () => {
        for (const line of lines.flush()) print(line);
      });
    }
    child.once('error', (error) => this.say('error', `could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      this.child = undefined;
      killLeftovers(child.pid);
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      if (this.stopping) {
        this.say('info', `stopped (${how})`);
        for (const resolve of this.exitWaiters.splice(0)) resolve();
        return;
      }
      this.failures = Date.now() - startedAt > this.policy.stableAfterMs ? 1 : this.failures + 1;
      const delay = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** (this.failures - 1));
      this.say('error', `died (${how}); restarting in ${(delay / 1000).toFixed(1)} s`);
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
      this.say('warn', `did not stop within ${graceMs / 1000} s: SIGKILL`);
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(killer);
  }
}
