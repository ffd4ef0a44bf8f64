/**
 * The async dispatcher (run by the worker): hands queued async requests to their deployments as
 * capacity allows. On every store change and every second it goes through the deployments with
 * QUEUED requests: queued requests of an environment whose current deployment changed (a promotion
 * finished) follow it; a sleeping deployment is woken (as a gateway request wakes it); and the
 * free capacity — READY replicas × concurrency_target, less the requests IN_PROGRESS — is filled
 * with the best queued requests (priority ascending, then oldest), marked IN_PROGRESS in one
 * transaction, each workflow then signalled `dispatched`. It also clears outputs older than the
 * retention period. The workflows recheck their records, so a lost signal only delays a request.
 */
import { wakeIfAsleep, type Store } from '../store/store';
import type { AsyncPredictionsClient } from '../temporal/workflows-client';
import { lineLogger, processLogger } from '../logging/logger';
import { CoalescedRun } from '../shared/coalesced-run';

/** What the dispatcher works with. */
export interface AsyncDispatcherDeps {
  store: Store;
  asyncPredictions: AsyncPredictionsClient;
  /** How long outputs are kept after a request ended (GANTRY_ASYNC_RETENTION_SECONDS). */
  retentionSeconds: number;
  log?: (line: string) => void;
}

/** How often outputs past their retention are looked for. */
const RETENTION_SWEEP_MS = 60_000;

/** Dispatches queued async requests; see the module comment. */
export class AsyncDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private readonly passes = new CoalescedRun(() => this.passOnce());
  private lastSweep = 0;
  private lastError = '';

  constructor(private readonly deps: AsyncDispatcherDeps) {}

  private log(line: string): void {
    (this.deps.log ?? lineLogger(processLogger()))(`async dispatcher: ${line}`);
  }

  /** Runs a pass on every store change and every `intervalMs`. */
  start(intervalMs: number): void {
    this.unwatch = this.deps.store.watch(() => void this.pass());
    this.timer = setInterval(() => void this.pass(), intervalMs);
    void this.pass();
  }

  /** Stops the passes and waits for one under way. */
  async stop(): Promise<void> {
    this.unwatch?.();
    clearInterval(this.timer);
    this.timer = undefined;
    await this.passes.current;
  }

  /** One pass (another follows at once when asked for during it). Never rejects. */
  pass(): Promise<void> {
    return this.passes.run();
  }

  private async passOnce(): Promise<void> {
    try {
      await this.dispatch();
      if (Date.now() - this.lastSweep >= RETENTION_SWEEP_MS) {
        this.lastSweep = Date.now();
        const cleared = await this.deps.store.clearAsyncOutputs(new Date(Date.now() - this.deps.retentionSeconds * 1000).toISOString());
        if (cleared > 0) this.log(`cleared the outputs of ${cleared} requests past their retention`);
      }
      this.lastError = '';
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastError) this.log(`pass failed (the next one retries): ${message}`);
      this.lastError = message;
    }
  }

  private async dispatch(): Promise<void> {
    const { store } = this.deps;
    const groups = await store.listAsyncQueueGroups();
    if (groups.length === 0) return;
    const deploymentIds = new Set<string>();
    for (const group of groups) {
      let deploymentId = group.deployment_id;
      if (group.environment !== null) {
        const current = (await store.getEnvironment(group.model_id, group.environment))?.current_deployment_id;
        if (current && current !== group.deployment_id) {
          const moved = await store.repointQueuedAsyncRequests(group.model_id, group.environment, group.deployment_id, current);
          if (moved > 0) this.log(`${moved} queued requests of ${group.model_id}/${group.environment} follow it from ${group.deployment_id} to ${current}`);
          deploymentId = current;
        }
      }
      deploymentIds.add(deploymentId);
    }
    const replicas = await store.listReplicas();
    for (const deploymentId of deploymentIds) {
      const deployment = await store.getDeployment(deploymentId);
      if (!deployment || deployment.deleted_at) continue; // its requests expire in the queue
      if (deployment.desired_replicas === 0) {
        if (await wakeIfAsleep(store, deployment)) this.log(`waking deployment ${deploymentId}: async requests are queued`);
        continue;
      }
      const ready = replicas.filter((r) => r.deployment_id === deploymentId && r.state === 'READY').length;
      if (ready === 0) continue;
      const dispatched = await store.dispatchAsyncRequests(deploymentId, ready * deployment.autoscaling.concurrency_target);
      await Promise.all(
        dispatched.map((request) =>
          this.deps.asyncPredictions.signalAsyncPrediction(request.id, 'dispatched').catch((error) => {
            // The workflow finds its record IN_PROGRESS on its next recheck.
            this.log(`signalling request ${request.id} failed (its workflow rechecks its record): ${(error as Error).message}`);
          }),
        ),
      );
    }
  }
}
