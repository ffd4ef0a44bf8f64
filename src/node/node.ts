/**
 * A node: the data plane of one machine. Its runtime runs replicas, its reconciler follows
 * the store's desired state, its gateway serves inference, and it reports what it observes
 * (replicas, applied route generations, a heartbeat) back to the store. A store that fails
 * (busy, full disk, I/O error) never stops it: every failure is logged and what must be
 * written is retried until it is.
 */
import type { EnvironmentRetention } from '../build/environment-collection';
import type { HomePaths } from '../home';
import { lineLogger, processLogger, type Logger } from '../logging/logger';
import { wakeIfAsleep, type Store } from '../store/store';
import { Autoscaler } from './autoscaler';
import { storeSecretResolver } from '../secrets/secret-values';
import type { WaitLimits } from './gateway/gateway';
import { NodeGateway } from './node-gateway';
import { Reconciler } from './reconciler';
import { describeError, formatSeconds, RetriedTask } from './retried-task';
import type { ReplicaTimings } from './runtime/replica-process';
import { endLeftoverReplicas } from './runtime/leftover-replicas';
import { Runtime } from './runtime/runtime';
import { UsageMeter } from './usage-meter';
import type { Sandbox } from '../sandbox/sandbox';

/** How a node is set up. */
export interface NodeOptions {
  store: Store;
  paths: HomePaths;
  nodeId: string;
  host: string;
  gatewayPort: number;
  /** The management API's URL, where the gateway passes the async inference routes on to. */
  apiUrl?: string;
  /** How often the reconciler runs even without a store change. */
  resyncMs?: number;
  heartbeatMs?: number;
  /** How often metered usage is written to the store. */
  usageFlushMs?: number;
  /** The most replica processes this node runs at once (GANTRY_MAX_REPLICAS); unlimited when not given. */
  maxReplicas?: number;
  /** How long unused Python environments and dead builds' scratch folders are kept (never collected when not given). */
  environmentRetention?: EnvironmentRetention;
  /** How often the autoscaler looks at demand. */
  autoscaleMs?: number;
  waitLimits?: WaitLimits;
  timings?: ReplicaTimings;
  /** Where the node's parts report in plain lines (info lines of `logger` by default). */
  log?: (line: string) => void;
  /** The node's logger: `log`'s default, and the level of the gateway thread's (the process logger by default). */
  logger?: Logger;
  /** The sandbox replicas run in (undefined: model isolation is off or unavailable). */
  sandbox?: Sandbox;
  /** Whether the gateway's `/metrics` serves the process metrics too (the node process's entry point). */
  processMetrics?: boolean;
  /** Where the gateway's thread writes its log lines, the access log among them (standard output by default; `logger` only sets their level). */
  gatewayLogFd?: number;
}

/** How long `stop` keeps retrying its last writes (usage, the empty replica report) before giving up. */
const STOP_WRITES_MS = 5000;

/** A running node. */
export class Node {
  readonly runtime: Runtime;
  readonly gateway: NodeGateway;
  private readonly reconciler: Reconciler;
  private readonly usage: UsageMeter;
  private readonly autoscaler: Autoscaler;
  private gatewayUrl = '';
  private applied: Record<string, number> = {};
  private reportTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => void) | undefined;
  /** The last replica snapshot the store has (without `updated_at`). */
  private lastReported = '';
  private autoscaling = false;
  private readonly heartbeats: RetriedTask;
  private readonly replicaReports: RetriedTask;
  private readonly refreshes: RetriedTask;
  private readonly log: (line: string) => void;

  constructor(private readonly options: NodeOptions) {
    const logger = options.logger ?? processLogger();
    const log = options.log ?? lineLogger(logger);
    this.log = log;
    this.runtime = new Runtime({
      nodeId: options.nodeId,
      timings: options.timings,
      onChange: () => {
        this.gateway.replicasChanged();
        this.scheduleReport();
      },
      log,
      resolveSecrets: storeSecretResolver(options.store, options.paths.secretsKeyFile),
      maxReplicas: options.maxReplicas,
    });
    this.reconciler = new Reconciler({
      store: options.store,
      runtime: this.runtime,
      paths: options.paths,
      log,
      environmentRetention: options.environmentRetention,
      sandbox: options.sandbox,
    });
    this.usage = new UsageMeter(options.store);
    this.autoscaler = new Autoscaler({ store: options.store, demand: { inFlight: (id) => this.gateway.inFlight(id), lastRequestAt: (id) => this.gateway.lastRequestAt(id) }, log });
    this.gateway = new NodeGateway({
      store: options.store,
      runtime: this.runtime,
      onRouted: (deploymentId, requests) => this.usage.countRequests(deploymentId, requests),
      processMetrics: options.processMetrics,
      logFd: options.gatewayLogFd,
      wake: (deploymentId, reason) => this.wake(deploymentId, reason),
      apiUrl: options.apiUrl,
      waitLimits: options.waitLimits,
      onApplied: (generations: Record<string, number>) => {
        const changed = JSON.stringify(generations) !== JSON.stringify(this.applied);
        this.applied = generations;
        if (changed && this.gatewayUrl) void this.heartbeats.run();
      },
      log,
      logger,
    });
    this.heartbeats = new RetriedTask(() => this.heartbeat(), { what: 'heartbeat', log });
    this.replicaReports = new RetriedTask(() => this.reportReplicas(), { what: 'replica report', log });
    this.refreshes = new RetriedTask(() => this.gateway.refresh(), { what: 'gateway refresh', log });
  }

  /**
   * Wakes a sleeping deployment: max(min_replica, 1) replicas, WAKING_UP until one is ready.
   * Resolves with whether this call woke it (not when it was awake, waking or not sleeping).
   */
  private async wake(deploymentId: string, reason: string): Promise<boolean> {
    const deployment = await this.options.store.getDeployment(deploymentId);
    if (deployment && (await wakeIfAsleep(this.options.store, deployment))) {
      this.log(`waking deployment ${deploymentId}: ${reason}`);
      return true;
    }
    return false;
  }

  /** Starts the gateway and the reconcile loop; resolves with the gateway's URL. */
  async start(): Promise<string> {
    // Replicas a previous run of this node left (it died outright and one did not end itself) go first.
    endLeftoverReplicas(this.options.paths.builds, this.log);
    const port = await this.gateway.listen(this.options.gatewayPort, this.options.host);
    this.gatewayUrl = `http://${this.options.host}:${port}`;
    // Both retried until written: the node is not started before the store knows of it.
    await this.heartbeats.run();
    await this.replicaReports.run(); // replaces whatever a previous run of this node left in the store
    await this.reconciler.run();
    // The reconciler logs its own failures (and runs again on the next resync); the gateway
    // refresh is retried, since the next store change may be long in coming.
    this.unwatch = this.options.store.watch(() => {
      void this.reconciler.run();
      void this.refreshes.run();
    });
    const usageFlushMs = this.options.usageFlushMs ?? 60_000;
    this.timers.push(setInterval(() => void this.reconciler.run(), this.options.resyncMs ?? 2000));
    this.timers.push(setInterval(() => void this.heartbeats.run(), this.options.heartbeatMs ?? 5000));
    this.timers.push(setInterval(() => this.usage.sampleReplicas(this.runtime.snapshot()), 1000));
    this.timers.push(
      setInterval(() => {
        this.usage
          .flush()
          .catch((error) =>
            this.log(
              `node: usage flush failed (${plural(this.usage.pendingSamples, 'sample')} kept for the next flush in ${formatSeconds(usageFlushMs)}): ${describeError(error)}`,
            ),
          );
      }, usageFlushMs),
    );
    this.timers.push(setInterval(() => this.autoscale(), this.options.autoscaleMs ?? 1000));
    return this.gatewayUrl;
  }

  /** One autoscaler tick, unless the previous one is still under way (a slow store). */
  private autoscale(): void {
    if (this.autoscaling) return;
    this.autoscaling = true;
    this.autoscaler
      .tick()
      .catch((error) => this.log(`node: autoscaler tick failed (next in ${formatSeconds(this.options.autoscaleMs ?? 1000)}): ${describeError(error)}`))
      .finally(() => {
        this.autoscaling = false;
      });
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
      void this.replicaReports.run().then((written) => (written ? this.reconciler.run() : undefined));
    }, 50);
  }

  /**
   * Writes the runtime's snapshot if it changed since the last one written. Each try takes a
   * fresh snapshot, so a retry writes the newest state; a snapshot counts as reported only
   * once the write succeeded.
   */
  private async reportReplicas(): Promise<void> {
    const snapshot = this.runtime.snapshot();
    // Only state changes are written: updated_at alone does not make a report.
    const signature = JSON.stringify(snapshot.map(({ updated_at: _, ...rest }) => rest));
    if (signature === this.lastReported) return;
    await this.options.store.reportReplicas(this.options.nodeId, snapshot);
    this.lastReported = signature;
  }

  /**
   * Stops serving: closes the gateway (in-flight requests finish), then stops every replica;
   * writes the usage and an empty replica report, retrying failed writes for up to 5 s.
   */
  async stop(): Promise<void> {
    this.unwatch?.();
    this.timers.forEach(clearInterval);
    this.usage.sampleReplicas(this.runtime.snapshot());
    await Promise.all([this.gateway.close(), this.runtime.stopAll(5000)]);
    if (this.reportTimer) clearTimeout(this.reportTimer);
    await Promise.all([this.heartbeats.close(), this.refreshes.close(), this.replicaReports.close()]);
    await this.lastWrite(
      'usage flush',
      () => this.usage.flush(),
      () => `${plural(this.usage.pendingSamples, 'usage sample')} lost`,
    );
    await this.lastWrite(
      'replica report',
      () => this.reportReplicas(),
      () => 'the store keeps the last replica report written',
    );
  }

  /** A write at stop: retried like the others, but for STOP_WRITES_MS at most. */
  private async lastWrite(what: string, write: () => Promise<void>, lost: () => string): Promise<void> {
    const task = new RetriedTask(write, { what: `${what} at stop`, log: this.log });
    const limit = setTimeout(() => void task.close(), STOP_WRITES_MS);
    const written = await task.run();
    clearTimeout(limit);
    if (!written) this.log(`node: gave up the ${what} at stop after ${formatSeconds(STOP_WRITES_MS)}: ${lost()}`);
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
