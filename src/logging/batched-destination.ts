/**
 * A log destination for a thread that writes a line per request: lines are gathered in memory
 * and handed to an asynchronous sonic-boom destination a block at a time. Handed a line at a
 * time, sonic-boom measures the byte length of everything it holds on every write (its block
 * grows to 16 KiB), which costs more than building the line.
 */
import type pino from 'pino';

/** The asynchronous destination lines are handed to. */
type SonicBoom = ReturnType<typeof pino.destination>;

/** Gathers lines and hands them to `target` in blocks of `blockChars` characters at least, or `flushMs` after a line at the latest. */
export class BatchedDestination {
  private lines: string[] = [];
  private chars = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly target: SonicBoom,
    private readonly blockChars: number,
    private readonly flushMs: number,
  ) {}

  /** Takes one line (written within `flushMs`). */
  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= this.blockChars) this.handOn();
    else this.timer ??= setTimeout(flushBatched, this.flushMs, this).unref();
  }

  /** Hands what is gathered to the target and has the target write it (asynchronously). */
  flush(): void {
    this.handOn();
    this.target.flush();
  }

  /**
   * Writes out everything gathered and held; resolves once it is written (at close). It waits
   * for the target's asynchronous write in flight before writing the rest synchronously:
   * sonic-boom's `flushSync` during such a write would write what follows before it.
   */
  async drain(): Promise<void> {
    this.handOn();
    await new Promise<void>((resolve) => {
      try {
        this.target.flush(() => resolve());
      } catch {
        resolve();
      }
    });
    try {
      this.target.flushSync();
    } catch {
      // destroyed, or never opened: it holds nothing that can be written
    }
  }

  /** Gives the gathered lines to the target as one string. */
  private handOn(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return;
    const block = this.lines.join('');
    this.lines = [];
    this.chars = 0;
    this.target.write(block);
  }
}

/** The flush timer's callback (a plain function: no closure per schedule). */
function flushBatched(destination: BatchedDestination): void {
  destination.flush();
}
