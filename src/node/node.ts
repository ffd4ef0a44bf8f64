/**
 * A node: the data plane of one machine. Its runtime runs replicas, its reconciler follows
 * the store's desired state, its gateway serves inference, and it reports what it observes
 * (replicas, applied route generations, a heartbeat) back to the store.
 */
import type { HomePaths } from '../home';
import type { Store } from '../store/store';
import { wakePatch } from '../shared/replica-status';
import { Autoscaler } from './autoscaler';
import { Gateway, type WaitLimits } from './gateway/gateway';
import { Reconciler } from './reconciler';
import type { ReplicaTimings } from './runtime/replica-process';
import { Runtime } from './runtime/runtime';
import { UsageMeter } from './usage-meter';

/** How a node is set up. */
export interface NodeOptions {
  store: Store;
  paths: HomePaths;
  nodeId: string;
  host: string;
  gatewayPort: number;
  /** How often the reconciler runs even without a store change. */
  resyncMs?: number;
  heartbeatMs?: number;
  /** How often metered usage is written to the store. */
  usageFlushMs?: number;
  /** How often the autoscaler looks at demand. */
  autoscaleMs?: number;
  waitLimits?: WaitLimits;
  timings?: ReplicaTimings;
  log?: (line: string) => void;
}

/** A running node. */
export class Node {
  readonly runtime: Runtime;
  readonly gateway: Gateway;
  private readonly reconciler: Reconciler;
  private readonly usage: UsageMeter;
  private readonly autoscaler: Autoscaler;
  private gatewayUrl = '';
  private applied: Record<string, number> = {};
  private reportTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => void) | undefined;
  private lastReported = '';
  private readonly log: (line: string) => void;

  constructor(private readonly options: NodeOptions) {
    const log = options.log ?? ((line: string) => console.log(line));
    this.log = log;
    this.runtime = new Runtime({
      nodeId: options.nodeId,
      timings: options.timings,
      onChange: () => this.scheduleReport(),
      log,
    });
    this.reconciler = new Reconciler({ store: options.store, runtime: this.runtime, paths: options.paths, log });
    this.usage = new UsageMeter(options.store);
    this.autoscaler = new Autoscaler({ store: options.store, demand: { inFlight: (id) => this.gateway.inFlight(id), lastRequestAt: (id) => this.gateway.lastRequestAt(id) }, log });
    this.gateway = new Gateway({
      store: options.store,
      runtime: this.runtime,
      onRouted: (deploymentId) => this.usage.countRequest(deploymentId),
      wake: (deploymentId) => void this.wake(deploymentId),
      waitLimits: options.waitLimits,
      onApplied: (generations: Record<string, number>) => {
        const changed = JSON.stringify(generations) !== JSON.stringify(this.applied);
        this.applied = generations;
        if (changed && this.gatewayUrl) void this.heartbeat();
      },
    });
  }

  /** Wakes a sleeping deployment: max(min_replica, 1) replicas, WAKING_UP until one is ready. */
  private async wake(deploymentId: string): Promise<void> {
    const deployment = await this.options.store.getDeployment(deploymentId);
    if (!deployment || deployment.deleted_at || deployment.desired_replicas > 0) return;
    if (await this.options.store.updateDeploymentIfStatus(deploymentId, ['SCALED_TO_ZERO', 'WAKING_UP'], wakePatch(deployment))) {
      this.log(`waking deployment ${deploymentId}: a request is waiting`);
    }
  }

  /** Starts the gateway and the reconcile loop; resolves with the gateway's URL. */
  async start(): Promise<string> {
    const port = await this.gateway.listen(this.options.gatewayPort, this.options.host);
    this.gatewayUrl = `http://${this.options.host}:${port}`;
    await this.heartbeat();
    await this.reportReplicas(); // replaces whatever a previous run of this node left in the store
    await this.reconciler.run();
    this.unwatch = this.options.store.watch(() => {
      void this.reconciler.run();
      void this.gateway.refresh();
    });
    this.timers.push(setInterval(() => void this.reconciler.run(), this.options.resyncMs ?? 2000));
    this.timers.push(setInterval(() => void this.heartbeat(), this.options.heartbeatMs ?? 5000));
    this.timers.push(setInterval(() => this.usage.sampleReplicas(this.runtime.snapshot()), 1000));
    this.timers.push(setInterval(() => void this.usage.flush(), this.options.usageFlushMs ?? 60_000));
    this.timers.push(setInterval(() => void this.autoscaler.tick().catch((error) => this.log(`autoscaler: ${(error as Error).message}`)), this.options.autoscaleMs ?? 1000));
    return this.gatewayUrl;
  }

  private async heartbeat(): Promise<void> {
    await this.options.store.reportNode({
      id: this.options.nodeId,
      gateway_url: this.gatewayUrl,
      applied_routes: this.applied,
      heartbeat_at: new Date().toISOString(),
    });
  }

  private scheduleReport(): void {
    if (this.reportTimer) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      // After reporting, settle what depends on replicas (WAKING_UP → ACTIVE) without waiting for a resync.
      void this.reportReplicas().then(() => this.reconciler.run());
    }, 50);
  }

  private async reportReplicas(): Promise<void> {
    const snapshot = this.runtime.snapshot();
    // Only state changes are written: updated_at alone does not make a report.
    const signature = JSON.stringify(snapshot.map(({ updated_at: _, ...rest }) => rest));
    if (signature === this.lastReported) return;
    this.lastReported = signature;
    await this.options.store.reportReplicas(this.options.nodeId, snapshot);
  }

  /** Stops serving: closes the gateway (in-flight requests finish), then stops every replica. */
  async stop(): Promise<void> {
    this.unwatch?.();
    this.timers.forEach(clearInterval);
    this.usage.sampleReplicas(this.runtime.snapshot());
    await Promise.all([this.gateway.close(), this.runtime.stopAll(5000)]);
    await this.usage.flush();
    if (this.reportTimer) clearTimeout(this.reportTimer);
    await this.reportReplicas();
  }
}
