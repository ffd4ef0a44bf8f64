/**
 * `gantry predict --async`, `gantry async status|cancel` and `gantry wake`: async inference and
 * waking a deployment, through the gateway's Baseten-shaped routes.
 */
import type { ApiClient } from '../api-client';
import { readData } from './predict';

/** Which deployment a command addresses: an environment (production by default) or one deployment. */
export interface TargetOptions {
  deployment?: string;
  environment?: string;
}

/** The options `gantry predict --async` takes. */
export interface AsyncPredictOptions extends TargetOptions {
  data?: string;
  webhook?: string;
  priority?: number;
  maxTimeInQueue?: number;
  verbose?: boolean;
}

/** An async request as the API shows it (Baseten's status view, with the output once kept). */
export interface AsyncRequestView {
  request_id: string;
  model_id: string;
  deployment_id: string | null;
  status: string;
  webhook_status: string;
  created_at: string;
  status_at: string;
  errors: { code: string; message: string }[];
  output?: unknown;
}

/** The gateway path prefix of a target: `/models/{id}/production`, `…/environments/{env}` or `…/deployment/{id}`. */
export async function targetPath(client: ApiClient, modelRef: string, options: TargetOptions): Promise<{ modelId: string; path: string }> {
  if (options.deployment && options.environment) throw new Error('give --deployment or --environment, not both');
  const model = await client.getModel(modelRef);
  if (options.deployment) {
    const deployment = await client.getDeployment(model.id, options.deployment);
    return { modelId: model.id, path: `/models/${model.id}/deployment/${deployment.id}` };
  }
  const environment = options.environment ?? 'production';
  return { modelId: model.id, path: environment === 'production' ? `/models/${model.id}/production` : `/models/${model.id}/environments/${encodeURIComponent(environment)}` };
}

/** Runs `gantry predict --async`: queues the request and prints its request_id. */
export async function asyncPredictCommand(client: ApiClient, modelRef: string, options: AsyncPredictOptions): Promise<number> {
  const body = {
    model_input: JSON.parse(readData(options.data)) as unknown,
    ...(options.webhook === undefined ? {} : { webhook_endpoint: options.webhook }),
    ...(options.priority === undefined ? {} : { priority: options.priority }),
    ...(options.maxTimeInQueue === undefined ? {} : { max_time_in_queue_seconds: options.maxTimeInQueue }),
  };
  const target = await targetPath(client, modelRef, options);
  const route = `${target.path}/async_predict`;
  const answer = await client.gatewayRequest<{ request_id: string }>('POST', route, body);
  if (options.verbose) console.error(`POST ${route} → queued`);
  console.log(answer.request_id);
  return 0;
}

/** Runs `gantry async status ID`: the request's status, webhook status, times, errors and output. */
export async function asyncStatusCommand(client: ApiClient, requestId: string, options: { output?: string; json?: boolean }): Promise<number> {
  const view = await client.request<AsyncRequestView>('GET', `/v1/async_requests/${encodeURIComponent(requestId)}`);
  if (options.json || options.output === 'json') {
    console.log(JSON.stringify(view, null, 2));
    return 0;
  }
  const lines: [string, string][] = [
    ['request', view.request_id],
    ['model', view.model_id],
    ['deployment', view.deployment_id ?? '-'],
    ['status', view.status],
    ['webhook', view.webhook_status],
    ['created', view.created_at],
    ['status at', view.status_at],
    ['errors', view.errors.length === 0 ? '-' : view.errors.map((e) => `${e.code}: ${e.message}`).join('\n           ')],
  ];
  if (view.output !== undefined) lines.push(['output', JSON.stringify(view.output)]);
  for (const [name, value] of lines) console.log(`${name.padEnd(10)} ${value}`);
  return 0;
}

/** Runs `gantry async cancel ID --model M`: cancels a queued request; exits 1 when it could not be canceled. */
export async function asyncCancelCommand(client: ApiClient, requestId: string, options: { model: string }): Promise<number> {
  const model = await client.getModel(options.model);
  const answer = await client.gatewayRequest<{ request_id: string; canceled: boolean; message: string }>(
    'DELETE',
    `/models/${model.id}/async_request/${encodeURIComponent(requestId)}`,
  );
  if (answer.canceled) {
    console.log(`canceled ${answer.request_id}${answer.message ? `: ${answer.message}` : ''}`);
    return 0;
  }
  console.error(`not canceled: ${answer.message}`);
  return 1;
}

/** Runs `gantry wake`: asks the gateway to wake the target and says which deployments are waking. */
export async function wakeCommand(client: ApiClient, modelRef: string, options: TargetOptions): Promise<number> {
  const target = await targetPath(client, modelRef, options);
  const answer = await client.gatewayRequest<{ deployments: { id: string; name: string; woken: boolean }[] }>('POST', `${target.path}/wake`);
  for (const deployment of answer.deployments) {
    console.log(`deployment ${deployment.name} (${deployment.id}) ${deployment.woken ? 'is waking up' : 'is already awake or waking up'}`);
  }
  return 0;
}
