/** The JSON shapes the API returns for models and deployments, built from store records. */
import { PRODUCTION } from '../shared/constants';
import type { DeploymentView, ModelView } from '../shared/views';
import type { DeploymentRecord, EnvironmentRecord, ModelRecord, ObservedReplica } from '../store/store';

/** Shows a deployment with the environments it serves and its replica counts. */
export function deploymentView(deployment: DeploymentRecord, environments: EnvironmentRecord[], replicas: ObservedReplica[]): DeploymentView {
  const own = replicas.filter((replica) => replica.deployment_id === deployment.id);
  const ready = own.filter((replica) => replica.state === 'READY').length;
  const serving = environments.filter((env) => env.current_deployment_id === deployment.id).map((env) => env.name);
  return {
    id: deployment.id,
    model_id: deployment.model_id,
    name: deployment.name,
    kind: deployment.kind,
    is_production: serving.includes(PRODUCTION),
    is_development: deployment.kind === 'development',
    status: deployment.status,
    status_message: deployment.status_message,
    labels: deployment.labels,
    autoscaling_settings: deployment.autoscaling,
    environments: serving,
    replicas: {
      desired: deployment.desired_replicas,
      ready,
      starting: own.filter((replica) => replica.state === 'STARTING' || replica.state === 'EXITED' || replica.state === 'UNHEALTHY').length,
    },
    active_replica_count: ready,
    revision: deployment.revision,
    created_at: deployment.created_at,
    updated_at: deployment.updated_at,
  };
}

/** Shows a model with its production and development deployments. */
export function modelView(model: ModelRecord, deployments: DeploymentRecord[], environments: EnvironmentRecord[]): ModelView {
  return {
    id: model.id,
    name: model.name,
    production_deployment_id: environments.find((env) => env.name === PRODUCTION)?.current_deployment_id ?? null,
    development_deployment_id: deployments.find((d) => d.kind === 'development')?.id ?? null,
    deployment_count: deployments.length,
    created_at: model.created_at,
  };
}
