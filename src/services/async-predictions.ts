/**
 * Async predictions: accepting a request (its target resolved now, its record QUEUED, its
 * workflow started), its status, cancel, and a deployment's queue. Knows the store and the
 * workflows; knows nothing of HTTP.
 */
import { PRODUCTION, workflowIds } from '../shared/constants';
import { newId } from '../shared/ids';
import { DEFAULT_PREDICT_TIMEOUT_SECONDS, type AsyncPredictRequest } from '../shared/schemas';
import type { AsyncCancelResult, AsyncPredictAccepted, AsyncQueueStatus, AsyncRequestView } from '../shared/views';
import type { AsyncRequestRecord, DeploymentRecord, ModelRecord, Store } from '../store/store';
import type { AsyncPredictionsClient } from '../temporal/workflows-client';
import { notFound, ServiceError, unavailable } from './errors';

/** How an async route names its deployment: as Baseten's paths do. */
export type AsyncTarget = { kind: 'environment'; name: string } | { kind: 'development' } | { kind: 'deployment'; id: string };

/** What the async prediction service needs. */
export interface AsyncPredictionServiceDeps {
  store: Store;
  asyncPredictions: AsyncPredictionsClient;
  /** How long webhook deliveries are retried (GANTRY_WEBHOOK_RETRY_SECONDS). */
  webhookRetrySeconds: number;
  /** How long a request may wait for a ready replica in the gateway (GANTRY_WAKE_TIMEOUT_SECONDS). */
  wakeTimeoutSeconds: number;
}

/** Statuses in which a deployment cannot take requests (the gateway answers them the same way). */
const NOT_SERVING: Partial<Record<DeploymentRecord['status'], string>> = {
  BUILDING: 'is still building',
  BUILD_FAILED: 'failed to build',
  DEPLOY_FAILED: 'failed to deploy',
};

/** The view of a request: Baseten's status fields, and the output while it is retained. */
export function asyncRequestView(request: AsyncRequestRecord): AsyncRequestView {
  let output: unknown;
  if (request.output !== null) {
    try {
      output = JSON.parse(request.output);
    } catch {
      output = request.output;
    }
  }
  return {
    request_id: request.id,
    model_id: request.model_id,
    deployment_id: request.deployment_id,
    status: request.status,
    webhook_status: request.webhook_status,
    created_at: request.created_at,
    status_at: request.status_at,
    errors: request.errors,
    ...(request.output !== null ? { output } : {}),
    attempts: request.attempts,
    priority: request.priority,
    ...(request.environment !== null ? { environment: request.environment } : {}),
    started_at: request.started_at,
    ended_at: request.ended_at,
  };
}

/** Operations on async prediction requests. */
export class AsyncPredictionService {
  constructor(private readonly deps: AsyncPredictionServiceDeps) {}

  /** The model (by id or name) and the deployment a target names now, or not_found / unavailable. */
  async resolve(modelRef: string, target: AsyncTarget): Promise<{ model: ModelRecord; deployment: DeploymentRecord; environment: string | null }> {
    const { store } = this.deps;
    const model = await store.getModel(modelRef);
    if (!model) throw notFound(`model ${modelRef} not found`);
    let deployment: DeploymentRecord | undefined;
    let environment: string | null = null;
    if (target.kind === 'environment') {
      const env = await store.getEnvironment(model.id, target.name);
      if (!env) throw notFound(`environment ${target.name} not found for model ${model.id}`);
      if (!env.current_deployment_id) throw notFound(`environment ${target.name} of model ${model.id} has no deployment yet`);
      deployment = await store.getDeployment(env.current_deployment_id);
      environment = env.name;
    } else if (target.kind === 'development') {
      deployment = (await store.listDeployments(model.id)).find((d) => d.kind === 'development');
      if (!deployment) throw notFound(`model ${model.id} has no development deployment`);
    } else {
      deployment = await store.getDeployment(target.id);
    }
    if (!deployment || deployment.model_id !== model.id || deployment.deleted_at) {
      throw notFound(`deployment ${target.kind === 'deployment' ? target.id : (deployment?.id ?? '')} not found for model ${model.id}`);
    }
    return { model, deployment, environment };
  }

  /** Accepts a request: checks the deployment can serve, stores it QUEUED and starts its workflow (else removes it: unavailable). */
  async submit(modelRef: string, target: AsyncTarget, request: AsyncPredictRequest): Promise<AsyncPredictAccepted> {
    const { model, deployment, environment } = await this.resolve(modelRef, target);
    if (deployment.status === 'INACTIVE' || deployment.status === 'DEACTIVATING') {
      throw notFound(`deployment ${deployment.name} (${deployment.id}) is deactivated`);
    }
    const notServing = NOT_SERVING[deployment.status];
    if (notServing) throw new ServiceError('unavailable', `deployment ${deployment.name} (${deployment.id}) ${notServing}`);
    const id = newId(16);
    const createdAt = new Date();
    const record = await this.deps.store.createAsyncRequest({
      id,
      model_id: model.id,
      environment,
      deployment_id: deployment.id,
      webhook_endpoint: request.webhook_endpoint ?? null,
      webhook_status: request.webhook_endpoint ? 'PENDING' : 'NO_WEBHOOK_PROVIDED',
      priority: request.priority,
      max_time_in_queue_seconds: request.max_time_in_queue_seconds,
      retry_config: request.inference_retry_config,
      input: JSON.stringify(request.model_input),
      workflow_id: workflowIds.asyncPrediction(id),
      created_at: createdAt.toISOString(),
      expires_at: new Date(createdAt.getTime() + request.max_time_in_queue_seconds * 1000).toISOString(),
    });
    const predictTimeout = Number(deployment.config?.runtime?.predict_timeout_seconds) || DEFAULT_PREDICT_TIMEOUT_SECONDS;
    try {
      await this.deps.asyncPredictions.startAsyncPrediction(
        model,
        deployment.id,
        {
          requestId: record.id,
          maxTimeInQueueSeconds: record.max_time_in_queue_seconds,
          expiresAtMs: Date.parse(record.expires_at),
          retry: record.retry_config,
          callTimeoutSeconds: predictTimeout + this.deps.wakeTimeoutSeconds + 60,
          webhook: record.webhook_endpoint !== null,
          webhookRetrySeconds: this.deps.webhookRetrySeconds,
        },
        `Async predict ${model.name} / ${environment ?? deployment.name} (request ${record.id}, priority ${record.priority})`,
      );
    } catch (error) {
      await this.deps.store.discardAsyncRequest(record.id);
      throw unavailable(`the request could not be queued: Temporal did not start its workflow (${(error as Error).message})`, error);
    }
    return { request_id: record.id };
  }

  /** A request by id (of the model, when one is named), or not_found. */
  async require(requestId: string, modelRef?: string): Promise<AsyncRequestRecord> {
    const request = await this.deps.store.getAsyncRequest(requestId);
    if (modelRef !== undefined && request) {
      const model = await this.deps.store.getModel(modelRef);
      if (!model) throw notFound(`model ${modelRef} not found`);
      if (request.model_id !== model.id) throw notFound(`async request ${requestId} not found for model ${model.id}`);
    }
    if (!request) throw notFound(`async request ${requestId} not found`);
    return request;
  }

  /** The status view of a request. */
  async view(requestId: string, modelRef?: string): Promise<AsyncRequestView> {
    return asyncRequestView(await this.require(requestId, modelRef));
  }

  /** Cancels a request that is still QUEUED; any other status answers canceled: false with the reason. */
  async cancel(modelRef: string, requestId: string): Promise<AsyncCancelResult> {
    const request = await this.require(requestId, modelRef);
    const canceled = await this.deps.store.transitionAsyncRequest(request.id, ['QUEUED'], {
      status: 'CANCELED',
      ended_at: new Date().toISOString(),
      webhook_status: request.webhook_endpoint ? 'CANCELED' : 'NO_WEBHOOK_PROVIDED',
    });
    if (!canceled) {
      const now = (await this.deps.store.getAsyncRequest(request.id))?.status ?? request.status;
      return { request_id: request.id, canceled: false, message: `only a QUEUED request can be canceled; this one is ${now}` };
    }
    // The record decides; the signal only ends the waiting workflow sooner (it rechecks the record anyway).
    await this.deps.asyncPredictions.signalAsyncPrediction(request.id, 'cancel').catch(() => undefined);
    return { request_id: request.id, canceled: true, message: 'the request was canceled' };
  }

  /** Queued and in-progress counts of the deployment a target names. */
  async queueStatus(modelRef: string, target: AsyncTarget): Promise<AsyncQueueStatus> {
    const { model, deployment } = await this.resolve(modelRef, target);
    const counts = (await this.deps.store.countAsyncRequests()).find((c) => c.deployment_id === deployment.id);
    return {
      model_id: model.id,
      deployment_id: deployment.id,
      num_queued_requests: counts?.queued ?? 0,
      num_in_progress_requests: counts?.in_progress ?? 0,
    };
  }
}

/** The target of production: its environment. */
export const PRODUCTION_TARGET: AsyncTarget = { kind: 'environment', name: PRODUCTION };
