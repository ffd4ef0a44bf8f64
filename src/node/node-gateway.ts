/**
 * The node's handle on its gateway, which runs on a thread of its own
 * (src/node/gateway/gateway-thread.ts): reads routing snapshots from the store and ready replicas
 * from the runtime and posts them to the thread (the gateway itself reads neither), and passes
 * what the thread reports back (applied route generations, routed requests, wakes, demand) to
 * the node.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger, LogLevelName } from '../logging/logger';
import type { Store } from '../store/store';
import type { WaitLimits } from './gateway/gateway';
import type { DemandReport } from './gateway/routing-snapshot';
import type { FromGatewayThread, GatewayThreadOptions, ToGatewayThread } from './gateway/thread-messages';
import { CoalescedRun } from '../shared/coalesced-run';
import { describeError } from './retried-task';
import { readRoutingSnapshot, readyReplicasOf } from './routing-snapshot';
import type { Runtime } from './runtime/runtime';

/** What the node's gateway is built from. */
export interface NodeGatewayOptions {
  store: Store;
  runtime: Pick<Runtime, 'routableReplicasByDeployment' | 'recordRequestsInFlight'>;
  /** Called with the route generations the gateway serves, after each snapshot it applied. */
  onApplied: (generations: Record<string, number>) => void;
  /** Called with the requests routed to each deployment since the last call (for metering). */
  onRouted: (deploymentId: string, requests: number) => void;
  /** Wakes a sleeping deployment; resolves with whether this call woke it. */
  wake: (deploymentId: string, reason: string) => Promise<boolean>;
  apiUrl?: string;
  waitLimits?: WaitLimits;
  /** Whether the gateway's `/metrics` serves the process metrics too (the node process's entry point asks it). */
  processMetrics?: boolean;
  log: (line: string) => void;
  /** The node's logger: the level of the gateway thread's own logger. */
  logger: Logger;
  /** Where the gateway thread writes its log lines, the access log among them (standard output by default). */
  logFd?: number;
}

/** The node's gateway: a thread fed from the store and the runtime. */
export class NodeGateway {
  private readonly worker: Worker;
  private readonly refreshes = new CoalescedRun(async () => {
    this.post({ type: 'routing', snapshot: await readRoutingSnapshot(this.options.store) });
  });
  /** The ready replicas last posted, as JSON: an unchanged set is not posted again. */
  private lastReady = '';
  /** The demand the thread reported last. */
  private demand: DemandReport = { deployments: {}, replicas: {} };
  private listening: { resolve: (port: number) => void; reject: (error: Error) => void } | undefined;
  private readonly closed: Promise<void>;
  private closing = false;

  constructor(private readonly options: NodeGatewayOptions) {
    const threadOptions: GatewayThreadOptions = {
      apiUrl: options.apiUrl,
      waitLimits: options.waitLimits,
      logLevel: options.logger.level as LogLevelName,
      logFd: options.logFd ?? 1,
      processMetrics: options.processMetrics ?? false,
    };
    this.worker = new Worker(path.join(__dirname, 'gateway', 'gateway-thread.js'), { workerData: threadOptions });
    this.worker.on('message', (message: FromGatewayThread) => this.onMessage(message));
    this.closed = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('error', (error) => this.onThreadError(error));
  }

  private post(message: ToGatewayThread): void {
    this.worker.postMessage(message);
  }

  private onMessage(message: FromGatewayThread): void {
    switch (message.type) {
      case 'listening':
        this.listening?.resolve(message.port);
        break;
      case 'listen-failed':
        this.listening?.reject(new Error(message.error));
        break;
      case 'applied':
        this.options.onApplied(message.generations);
        break;
      case 'demand':
        this.demand = message.report;
        this.options.runtime.recordRequestsInFlight(message.report.replicas);
        break;
      case 'routed':
        for (const [deploymentId, requests] of Object.entries(message.counts)) this.options.onRouted(deploymentId, requests);
        break;
      case 'wake':
        this.options.wake(message.deploymentId, message.reason).then(
          (woken) => this.post({ type: 'woken', wakeId: message.wakeId, woken }),
          (error) => this.post({ type: 'woken', wakeId: message.wakeId, woken: false, error: describeError(error) }),
        );
        break;
      case 'closed':
        // Its log is flushed and its counts reported: nothing of it is still needed.
        void this.worker.terminate();
        break;
    }
  }

  /** The gateway thread failed: the node cannot serve without it, so the failure is thrown as the node's own (an orderly stop and a restart by the supervisor). */
  private onThreadError(error: Error): void {
    this.options.log(`node: the gateway thread failed: ${describeError(error)}`);
    this.listening?.reject(error);
    if (!this.closing) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  /** Pushes the routing snapshot and the ready replicas, then starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    await this.refresh();
    this.replicasChanged();
    const bound = new Promise<number>((resolve, reject) => {
      this.listening = { resolve, reject };
    });
    this.post({ type: 'listen', port, host });
    try {
      return await bound;
    } finally {
      this.listening = undefined;
    }
  }

  /** Reads a routing snapshot from the store and posts it (coalesced when called during a read). */
  refresh(): Promise<void> {
    return this.refreshes.run();
  }

  /** Posts the runtime's ready replicas when they changed (called on every runtime change). */
  replicasChanged(): void {
    const ready = readyReplicasOf(this.options.runtime);
    const signature = JSON.stringify(ready);
    if (signature === this.lastReady) return;
    this.lastReady = signature;
    this.post({ type: 'replicas', ready });
  }

  /** Requests in flight or waiting for the deployment, as last reported (at most DEMAND_REPORT_MS old while it changes). */
  inFlight(deploymentId: string): number {
    return this.demand.deployments[deploymentId]?.inFlight ?? 0;
  }

  /** Requests waiting for a ready replica of the deployment, as last reported. */
  queued(deploymentId: string): number {
    return this.demand.deployments[deploymentId]?.queued ?? 0;
  }

  /** When the last request for the deployment arrived, as last reported. */
  lastRequestAt(deploymentId: string): number | undefined {
    return this.demand.deployments[deploymentId]?.lastRequestAt;
  }

  /** Stops accepting connections, waits for in-flight requests to finish and for the thread to end. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.post({ type: 'close' });
    }
    await this.closed;
  }
}
