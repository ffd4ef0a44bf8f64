/**
 * Meters usage per deployment per minute: replica-seconds (every replica process that is
 * running, ready or not) and requests the gateway routed. Buffered in memory and written to
 * the store once a minute and on stop, so a crash loses at most a minute; a write that fails
 * keeps its samples for the next one.
 */
import type { ObservedReplica, Store, UsageSample } from '../store/store';

/** The minute a time falls in, as the store keys usage. */
export function minuteOf(ms: number): string {
  return new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
}

/** A node's usage meter. */
export class UsageMeter {
  private readonly pending = new Map<string, UsageSample>();
  /** The last flush asked for; the next one starts after it. */
  private flushing: Promise<void> | undefined;
  private lastSampleMs: number;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.lastSampleMs = now();
  }

  private sample(deploymentId: string, minute: string): UsageSample {
    const key = `${deploymentId}@${minute}`;
    let sample = this.pending.get(key);
    if (!sample) {
      sample = { deployment_id: deploymentId, minute, replica_seconds: 0, requests: 0 };
      this.pending.set(key, sample);
    }
    return sample;
  }

  /** Counts one request routed to a deployment. */
  countRequest(deploymentId: string): void {
    this.countRequests(deploymentId, 1);
  }

  /** Counts `requests` requests routed to the deployment (the gateway thread reports them in batches). */
  countRequests(deploymentId: string, requests: number): void {
    this.sample(deploymentId, minuteOf(this.now())).requests += requests;
  }

  /** Adds the time since the last call, for every replica process running now. */
  sampleReplicas(replicas: ObservedReplica[]): void {
    const at = this.now();
    const seconds = (at - this.lastSampleMs) / 1000;
    this.lastSampleMs = at;
    if (seconds <= 0) return;
    for (const replica of replicas) {
      if (replica.state === 'EXITED' || replica.pid === null) continue;
      this.sample(replica.deployment_id, minuteOf(at)).replica_seconds += seconds;
    }
  }

  /** Samples metered and not yet written (failed writes included). */
  get pendingSamples(): number {
    return this.pending.size;
  }

  /**
   * Writes what has been metered to the store. Flushes run one after another, each writing
   * what is pending when it starts; when the write fails, its samples go back into the
   * buffer (added to anything metered meanwhile) for the next flush, and the flush rejects.
   * Assumes `addUsage` writes all samples or none (SQLite's is one transaction).
   */
  flush(): Promise<void> {
    const previous = this.flushing ?? Promise.resolve();
    const next = previous.then(
      () => this.write(),
      () => this.write(),
    );
    this.flushing = next;
    const settled = (): void => {
      if (this.flushing === next) this.flushing = undefined;
    };
    next.then(settled, settled);
    return next;
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const samples = [...this.pending.values()];
    this.pending.clear();
    try {
      await this.store.addUsage(samples);
    } catch (error) {
      for (const kept of samples) {
        const sample = this.sample(kept.deployment_id, kept.minute);
        sample.replica_seconds += kept.replica_seconds;
        sample.requests += kept.requests;
      }
      throw error;
    }
  }
}
