/**
 * Meters usage per deployment per minute: replica-seconds (every replica process that is
 * running, ready or not) and requests the gateway routed. Buffered in memory and written to
 * the store once a minute and on stop, so a crash loses at most a minute.
 */
import type { ObservedReplica, Store, UsageSample } from '../store/store';

/** The minute a time falls in, as the store keys usage. */
export function minuteOf(ms: number): string {
  return new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
}

/** A node's usage meter. */
export class UsageMeter {
  private readonly pending = new Map<string, UsageSample>();
  private lastSampleMs: number;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.lastSampleMs = now();
  }

  private sample(deploymentId: string, at: number): UsageSample {
    const minute = minuteOf(at);
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
    this.sample(deploymentId, this.now()).requests++;
  }

  /** Adds the time since the last call, for every replica process running now. */
  sampleReplicas(replicas: ObservedReplica[]): void {
    const at = this.now();
    const seconds = (at - this.lastSampleMs) / 1000;
    this.lastSampleMs = at;
    if (seconds <= 0) return;
    for (const replica of replicas) {
      if (replica.state === 'EXITED' || replica.pid === null) continue;
      this.sample(replica.deployment_id, at).replica_seconds += seconds;
    }
  }

  /** Writes what has been metered to the store. */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const samples = [...this.pending.values()];
    this.pending.clear();
    await this.store.addUsage(samples);
  }
}
