/**
 * The node's handle on its gateway: reads routing snapshots from the store and ready replicas
 * from the runtime and pushes them in (the gateway itself reads neither), and passes what the
 * gateway reports back (applied route generations, routed requests, wakes, demand) to the node.
 */
import type { Logger } from '../logging/logger';
import type { GatewayMetrics } from '../metrics/gateway-metrics';
import type { Store } from '../store/store';
import { Gateway, type WaitLimits } from './gateway/gateway';
import { readRoutingSnapshot, readyReplicasOf } from './routing-snapshot';
import type { Runtime } from './runtime/runtime';

/** What the node's gateway is built from. */
export interface NodeGatewayOptions {
  store: Store;
  runtime: Pick<Runtime, 'routableReplicasByDeployment' | 'recordRequestsInFlight'>;
  /** Called with the route generations the gateway serves, after each snapshot it applied. */
  onApplied: (generations: Record<string, number>) => void;
  /** Called for every request routed to a deployment (for metering). */
  onRouted: (deploymentId: string) => void;
  /** Wakes a sleeping deployment; resolves with whether this call woke it. */
  wake: (deploymentId: string, reason: string) => Promise<boolean>;
  apiUrl?: string;
  waitLimits?: WaitLimits;
  log: (line: string) => void;
  logger: Logger;
}

/** The node's gateway, fed from the store and the runtime. */
export class NodeGateway {
  private readonly gateway: Gateway;
  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  /** The ready replicas last pushed, as JSON: an unchanged set is not pushed again. */
  private lastReady = '';

  constructor(private readonly options: NodeGatewayOptions) {
    this.gateway = new Gateway({
      onApplied: options.onApplied,
      onRouted: options.onRouted,
      onDemand: (report) => options.runtime.recordRequestsInFlight(report.replicas),
      wake: options.wake,
      apiUrl: options.apiUrl,
      waitLimits: options.waitLimits,
      log: options.log,
      logger: options.logger,
    });
  }

  /** What the gateway counts, served at its `GET /metrics`. */
  get metrics(): GatewayMetrics {
    return this.gateway.metrics;
  }

  /** Pushes the routing snapshot and the ready replicas, then starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    await this.refresh();
    this.replicasChanged();
    return this.gateway.listen(port, host);
  }

  /** Reads a routing snapshot from the store and pushes it (coalesced when called during a read). */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        this.gateway.applyRouting(await readRoutingSnapshot(this.options.store));
      } while (this.refreshAgain);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Pushes the runtime's ready replicas when they changed (called on every runtime change). */
  replicasChanged(): void {
    const ready = readyReplicasOf(this.options.runtime);
    const signature = JSON.stringify(ready);
    if (signature === this.lastReady) return;
    this.lastReady = signature;
    this.gateway.applyReplicas(ready);
  }

  /** Requests in flight or waiting for the deployment. */
  inFlight(deploymentId: string): number {
    return this.gateway.inFlight(deploymentId);
  }

  /** Requests waiting for a ready replica of the deployment. */
  queued(deploymentId: string): number {
    return this.gateway.queued(deploymentId);
  }

  /** When the last request for the deployment arrived. */
  lastRequestAt(deploymentId: string): number | undefined {
    return this.gateway.lastRequestAt(deploymentId);
  }

  /** Stops accepting connections and waits for in-flight requests to finish. */
  close(): Promise<void> {
    return this.gateway.close();
  }
}
