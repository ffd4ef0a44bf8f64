/** The messages between the node's main thread and its gateway's thread (structured-cloned over the worker's port). */
import type { WaitLimits } from './gateway';
import type { LogLevelName } from '../../logging/logger';
import type { DemandReport, ReadyReplicas, RoutingSnapshot } from './routing-snapshot';

/** What the gateway's thread is started with (its `workerData`). */
export interface GatewayThreadOptions {
  apiUrl?: string;
  waitLimits?: WaitLimits;
  /** The level of its access log and lines (written to standard output as the node's). */
  logLevel: LogLevelName;
  /** The file descriptor the thread's log lines (the access log among them) are written to: standard output unless given. */
  logFd: number;
  /** Whether its `/metrics` also serves the process metrics (CPU, memory, event loop) labelled `node`. */
  processMetrics: boolean;
}

/** Main thread → gateway thread. */
export type ToGatewayThread =
  | { type: 'routing'; snapshot: RoutingSnapshot }
  | { type: 'replicas'; ready: ReadyReplicas }
  | { type: 'listen'; port: number; host: string }
  | { type: 'woken'; wakeId: number; woken: boolean; error?: string }
  | { type: 'close' };

/** Gateway thread → main thread. */
export type FromGatewayThread =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; error: string }
  | { type: 'applied'; generations: Record<string, number> }
  | { type: 'demand'; report: DemandReport }
  | { type: 'routed'; counts: Record<string, number> }
  | { type: 'wake'; wakeId: number; deploymentId: string; reason: string }
  | { type: 'closed' };
