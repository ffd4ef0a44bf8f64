/**
 * A task that runs one at a time, where calls made while it runs coalesce into one more run
 * right after it (level-triggered work: a reconcile pass, a routing refresh, a dispatch pass).
 */
export class CoalescedRun {
  private running: Promise<void> | undefined;
  private again = false;

  /**
   * `task` is the work of one run. With `onError`, a run that throws ends there (a run asked for
   * during it is not made), `onError` is told once, and `run()` never rejects; without it, `run()`
   * rejects with the error.
   */
  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError?: (error: unknown) => void,
  ) {}

  /** Runs the task, or during a run asks for one more after it; resolves when the task is idle again. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const runs = (async () => {
      do {
        this.again = false;
        await this.task();
      } while (this.again);
    })();
    const onError = this.onError;
    this.running = (onError ? runs.catch(onError) : runs).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The run under way (and any asked for during it), or undefined when idle. */
  get current(): Promise<void> | undefined {
    return this.running;
  }
}
