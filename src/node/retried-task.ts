/**
 * A store write (or read) the node must get through: calls coalesce, a failure is logged in
 * one line and tried again after a backoff (250 ms doubling to 10 s) until it succeeds, and
 * each try does the task afresh, so a retry carries the newest state, not the failed one.
 */

/** How long to wait between failed tries: `initialMs`, doubling up to `maxMs`. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** The backoff of the node's store writes. */
export const STORE_BACKOFF: Backoff = { initialMs: 250, maxMs: 10_000 };

/** An error as one line: its code (SQLITE_BUSY, ENOSPC) when the message does not start with it, then the message's first line. */
export function describeError(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !message.startsWith(code) ? `${code}: ${message}` : message;
}

/** A duration for a log line: `0.25 s`, `2 s`. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))} s`;
}

/** What a retried task is, and where its failures are told. */
export interface RetriedTaskOptions {
  /** Names the task in log lines: `node: <what> failed (will retry in 2 s): …`. */
  what: string;
  log: (line: string) => void;
  backoff?: Backoff;
}

/** A task run until it succeeds, with calls during a run coalesced into one more run. */
export class RetriedTask {
  private running: Promise<boolean> | undefined;
  private again = false;
  private closed = false;
  private cutWaitShort: (() => void) | undefined;
  private readonly backoff: Backoff;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly options: RetriedTaskOptions,
  ) {
    this.backoff = options.backoff ?? STORE_BACKOFF;
  }

  /**
   * Runs the task (or, during a run, asks for one more once it succeeds). Resolves when the task
   * is idle again: true if its last try succeeded, false if it was closed first. Never rejects.
   */
  run(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop();
    return this.running;
  }

  /** Stops retrying: a try under way may finish, no other starts. Resolves when the task is idle. */
  async close(): Promise<void> {
    this.closed = true;
    this.cutWaitShort?.();
    await this.running;
  }

  private async loop(): Promise<boolean> {
    let delayMs = this.backoff.initialMs;
    let succeeded = false;
    // Every path to the end goes through at least one await, so `running` is set before it is cleared.
    for (;;) {
      this.again = false;
      try {
        await this.task();
        succeeded = true;
        delayMs = this.backoff.initialMs;
        if (!this.again || this.closed) break;
      } catch (error) {
        succeeded = false;
        if (this.closed) {
          this.options.log(`node: ${this.options.what} failed (not retried: stopping): ${describeError(error)}`);
          break;
        }
        this.options.log(`node: ${this.options.what} failed (will retry in ${formatSeconds(delayMs)}): ${describeError(error)}`);
        await this.wait(delayMs);
        if (this.closed) break;
        delayMs = Math.min(delayMs * 2, this.backoff.maxMs);
      }
    }
    this.running = undefined;
    return succeeded;
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.cutWaitShort = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.cutWaitShort = done;
    });
  }
}
