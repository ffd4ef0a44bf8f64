/**
 * The node's side of the gateway's routing: reads a routing snapshot from the store (after each
 * store change) and the ready replicas from the runtime (after each replica change), the two
 * things the node pushes into its gateway.
 */
import { DEFAULT_PREDICT_TIMEOUT_SECONDS } from '../shared/schemas';
import type { DeploymentRecord, Store } from '../store/store';
import type { ReadyReplicas, RoutedDeployment, RoutingSnapshot } from './gateway/routing-snapshot';
import type { Runtime } from './runtime/runtime';

/** A deployment's predict timeout: its config's, or the default when the config has none (built before the key existed, or not built yet). */
export function predictTimeoutOf(deployment: Pick<DeploymentRecord, 'config'>): number {
  const seconds: unknown = deployment.config?.runtime?.predict_timeout_seconds;
  return typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 1 ? seconds : DEFAULT_PREDICT_TIMEOUT_SECONDS;
}

/** What the gateway keeps of a deployment record. */
export function routedDeployment(deployment: DeploymentRecord): RoutedDeployment {
  return {
    id: deployment.id,
    model_id: deployment.model_id,
    name: deployment.name,
    status: deployment.status,
    kind: deployment.kind,
    desired_replicas: deployment.desired_replicas,
    predict_timeout_seconds: predictTimeoutOf(deployment),
  };
}

/** Reads models, live deployments, environments, routes and the hashes of the keys not revoked. */
export async function readRoutingSnapshot(store: Store): Promise<RoutingSnapshot> {
  const [models, deployments, environments, routes, keys] = await Promise.all([
    store.listModels(),
    store.listLiveDeployments(),
    store.listAllEnvironments(),
    store.listRoutes(),
    store.listApiKeyHashes(),
  ]);
  return {
    modelIds: models.map((model) => model.id),
    deployments: deployments.filter((deployment) => !deployment.deleted_at).map(routedDeployment),
    environments: environments.map(({ model_id, name, current_deployment_id }) => ({ model_id, name, current_deployment_id })),
    routes: routes.map(({ model_id, environment, weights, generation }) => ({ model_id, environment, weights, generation })),
    keyHashes: [...keys.keys()],
  };
}

/** The runtime's ready replicas by deployment (what the gateway may send requests to). */
export function readyReplicasOf(runtime: Pick<Runtime, 'routableReplicasByDeployment'>): ReadyReplicas {
  const ready: ReadyReplicas = {};
  for (const [deploymentId, replicas] of runtime.routableReplicasByDeployment()) {
    ready[deploymentId] = replicas.flatMap((replica) => (replica.port === undefined ? [] : [{ id: replica.id, port: replica.port }]));
  }
  return ready;
}
