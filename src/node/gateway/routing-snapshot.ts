/**
 * What the node pushes into its gateway: a routing snapshot after every store change, and the
 * ready replicas after every replica change. Plain data (structured-cloneable: it crosses to the
 * gateway's thread as a message); the gateway reads nothing else to route a request.
 */
import type { DeploymentStatus } from '../../shared/schemas';
import type { DeploymentKind } from '../../shared/views';

/** What the gateway keeps of a live deployment. */
export interface RoutedDeployment {
  id: string;
  model_id: string;
  name: string;
  status: DeploymentStatus;
  kind: DeploymentKind;
  desired_replicas: number;
  /** `runtime.predict_timeout_seconds` of its config (the default when the config predates the key). */
  predict_timeout_seconds: number;
}

/** An environment: the deployment it serves. */
export interface RoutedEnvironmentRecord {
  model_id: string;
  name: string;
  current_deployment_id: string | null;
}

/** An environment's traffic split and its generation (a promotion waits for its generation to be applied). */
export interface RoutedRoute {
  model_id: string;
  environment: string;
  /** Deployment id → weight. */
  weights: Record<string, number>;
  generation: number;
}

/** Everything the gateway routes by, as the store had it at one moment. */
export interface RoutingSnapshot {
  modelIds: string[];
  /** Live deployments (not deleted). */
  deployments: RoutedDeployment[];
  environments: RoutedEnvironmentRecord[];
  routes: RoutedRoute[];
  /** SHA-256 hashes of the API keys not revoked. */
  keyHashes: string[];
}

/** A ready replica the gateway may send requests to. */
export interface ReadyReplica {
  id: string;
  port: number;
}

/** Deployment id → its ready replicas (deployments with none may be left out). */
export type ReadyReplicas = Record<string, ReadyReplica[]>;

/** An empty snapshot: nothing routes, no key is valid. */
export const EMPTY_ROUTING: RoutingSnapshot = { modelIds: [], deployments: [], environments: [], routes: [], keyHashes: [] };

/** The key of an environment's route, `<model>/<environment>`, as the store and the applied generations spell it. */
export function environmentKey(modelId: string, environment: string): string {
  return `${modelId}/${environment}`;
}

/** What the gateway reports of its demand: per deployment (for the autoscaler) and per replica (for draining). */
export interface DemandReport {
  deployments: Record<string, DeploymentDemand>;
  /** Replica id → requests in flight on it (replicas with none left out). */
  replicas: Record<string, number>;
}

/** A deployment's demand as the gateway sees it. */
export interface DeploymentDemand {
  /** Requests in flight or waiting for it. */
  inFlight: number;
  /** Requests waiting for a ready replica of it. */
  queued: number;
  /** When its last request arrived (ms since the epoch), if any did. */
  lastRequestAt?: number;
}
