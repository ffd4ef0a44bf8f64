/**
 * The management API's OpenAPI 3.1 document, generated from the zod schemas that parse its
 * requests (src/shared/schemas.ts) and describe its answers (src/shared/views.ts), with
 * `zod-openapi`. Served at `GET /v1/openapi.json` and committed as docs/openapi.json
 * (`npm run openapi`; a unit test fails when the two differ).
 */
import { z } from 'zod';
import {
  createDocument,
  createSchema,
  type ZodOpenApiLinksObject,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
  type oas31,
} from 'zod-openapi';
import {
  asyncPredictRequestSchema,
  autoscalingSettingsPatchSchema,
  createEnvironmentSchema,
  deploymentListQuerySchema,
  eventsQuerySchema,
  logsQuerySchema,
  promoteRequestSchema,
  promotionActions,
  pushOptionsSchema,
  updateDeploymentSchema,
  updateEnvironmentSchema,
  upsertSecretSchema,
  usageQuerySchema,
} from '../shared/schemas';
import {
  apiErrorBodySchema,
  asyncCancelResultSchema,
  asyncPredictAcceptedSchema,
  asyncQueueStatusSchema,
  asyncRequestViewSchema,
  auditEntrySchema,
  deploymentLogsSchema,
  deploymentViewSchema,
  developmentPushAnswerSchema,
  environmentViewSchema,
  healthSchema,
  logEntrySchema,
  modelDetailSchema,
  modelOverviewSchema,
  modelViewSchema,
  promotionViewSchema,
  secretDeletedSchema,
  secretViewSchema,
  usageReportSchema,
} from '../shared/views';
import { DEPLOYMENT_ID_HEADER } from '../shared/constants';

/** The version the document gives the API (the package's). */
const API_VERSION = '0.1.0';

/** The error answers an operation can give, each with when it is given. */
const ERROR_WHEN: Record<number, string> = {
  400: 'Malformed request: a body that is not JSON (or not the multipart a push takes), a path that is not valid percent-encoding',
  401: 'No API key, or one that is not valid',
  404: 'The model, deployment, environment, promotion, secret or request named does not exist',
  409: 'Refused in the current state (the message says why: an update under way, a promotion in flight, a name taken, ...)',
  413: 'The request body is too large',
  422: 'The input does not match its schema: `details` names each bad field',
  502: 'The gateway could not be reached',
  503: 'Temporal, the node or the store cannot be used now (the store locked past its busy timeout, its disk full): retry shortly (`Retry-After`)',
};

/**
 * Error responses, each with the error body. Every route behind the key (401) reads the store
 * to check it, so each can also answer 503 when the store is unavailable.
 */
function errors(...statuses: number[]): ZodOpenApiResponsesObject {
  const all = statuses.includes(401) && !statuses.includes(503) ? [...statuses, 503] : statuses;
  return Object.fromEntries(all.map((status) => [String(status), { description: ERROR_WHEN[status], content: { 'application/json': { schema: apiErrorBodySchema } } }]));
}

/** A 200 (or other) JSON answer. */
function json(description: string, schema: z.ZodType, links?: ZodOpenApiLinksObject): ZodOpenApiResponseObject {
  return { description, content: { 'application/json': { schema } }, ...(links ? { links } : {}) };
}

/** A JSON request body. */
function jsonBody(schema: z.ZodType): ZodOpenApiOperationObject['requestBody'] {
  return { required: true, content: { 'application/json': { schema } } };
}

/**
 * One server-sent event of a stream: its name and its JSON data, described by the component
 * `dataSchemaId` (`contentSchema`; Schemathesis checks each event it reads against it).
 */
function sseEvent(name: string, dataSchemaId: string): z.ZodType {
  return z.object({
    event: z.literal(name),
    data: z.string().meta({
      description: `JSON: ${dataSchemaId}`,
      override: { contentMediaType: 'application/json', contentSchema: { $ref: `#/components/schemas/${dataSchemaId}` } },
    }),
    id: z.string().optional(),
    retry: z.number().int().optional(),
  });
}

/** A server-sent event stream, its events described one by one (OpenAPI 3.1 lets `schema` describe each event). */
function eventStream(description: string, events: z.ZodType): ZodOpenApiResponseObject {
  return { description, content: { 'text/event-stream': { schema: events } } };
}

/** The data of `GET /v1/events`' `models` event. */
const modelsEventData = z.strictObject({ models: z.array(modelOverviewSchema) }).meta({ id: 'ModelsEventData' });
/** The data of a followed log's `log` event. */
const logEventData = z.strictObject({ entries: z.array(logEntrySchema) }).meta({ id: 'LogEventData' });

const modelParam = z.string().meta({ description: "The model's id or name", example: 'abcd1234' });
const refParam = z.string().meta({ description: 'A deployment id or name, or `production` or `development`' });
const envParam = z.string().meta({ description: "An environment's name", example: 'production' });

const modelPath = z.object({ model: modelParam });
const deploymentPath = z.object({ model: modelParam, ref: refParam });
const environmentPath = z.object({ model: modelParam, env: envParam });

/** The operations a model's id and name open, for stateful testing and generated clients. */
const modelLinks = (from: string): ZodOpenApiLinksObject => ({
  GetModel: { operationId: 'getModel', parameters: { model: from } },
  ListDeployments: { operationId: 'listDeployments', parameters: { model: from } },
  ListEnvironments: { operationId: 'listEnvironments', parameters: { model: from } },
  CreateEnvironment: { operationId: 'createEnvironment', parameters: { model: from } },
  ListModelAuditLogs: { operationId: 'listModelAuditLogs', parameters: { model: from } },
  DevelopmentWatchHeartbeat: { operationId: 'developmentWatchHeartbeat', parameters: { model: from } },
  PromoteDevelopment: { operationId: 'promoteDevelopment', parameters: { model: from } },
  AsyncPredictProduction: { operationId: 'asyncPredictProduction', parameters: { model: from } },
  AsyncQueueStatusProduction: { operationId: 'asyncQueueStatusProduction', parameters: { model: from } },
  AsyncPredictDevelopment: { operationId: 'asyncPredictDevelopment', parameters: { model: from } },
  AsyncQueueStatusDevelopment: { operationId: 'asyncQueueStatusDevelopment', parameters: { model: from } },
});

/** The operations on one deployment, from its model and id. */
const deploymentLinks = (model: string, ref: string): ZodOpenApiLinksObject => ({
  GetDeployment: { operationId: 'getDeployment', parameters: { model, ref } },
  UpdateDeployment: { operationId: 'updateDeployment', parameters: { model, ref } },
  GetDeploymentLogs: { operationId: 'getDeploymentLogs', parameters: { model, ref } },
  UpdateAutoscalingSettings: { operationId: 'updateAutoscalingSettings', parameters: { model, ref } },
  DeactivateDeployment: { operationId: 'deactivateDeployment', parameters: { model, ref } },
  ActivateDeployment: { operationId: 'activateDeployment', parameters: { model, ref } },
  PredictThroughApi: { operationId: 'predictThroughApi', parameters: { model, ref } },
  AsyncPredictDeployment: { operationId: 'asyncPredictDeployment', parameters: { model, deployment: ref } },
  AsyncQueueStatusDeployment: { operationId: 'asyncQueueStatusDeployment', parameters: { model, deployment: ref } },
  DeleteDeployment: { operationId: 'deleteDeployment', parameters: { model, ref } },
});

/** The operations on one environment, from its model and name. */
const environmentLinks = (model: string, env: string): ZodOpenApiLinksObject => ({
  GetEnvironment: { operationId: 'getEnvironment', parameters: { model, env } },
  UpdateEnvironment: { operationId: 'updateEnvironment', parameters: { model, env } },
  ListPromotions: { operationId: 'listPromotions', parameters: { model, env } },
  GetPromotion: { operationId: 'getPromotion', parameters: { model, env } },
  Promote: { operationId: 'promote', parameters: { model, env } },
  PausePromotion: { operationId: 'pausePromotion', parameters: { model, env } },
  ResumePromotion: { operationId: 'resumePromotion', parameters: { model, env } },
  CancelPromotion: { operationId: 'cancelPromotion', parameters: { model, env } },
  ForceCancelPromotion: { operationId: 'forceCancelPromotion', parameters: { model, env } },
  ForceRollForwardPromotion: { operationId: 'forceRollForwardPromotion', parameters: { model, env } },
  AsyncPredictEnvironment: { operationId: 'asyncPredictEnvironment', parameters: { model, env } },
  AsyncQueueStatusEnvironment: { operationId: 'asyncQueueStatusEnvironment', parameters: { model, env } },
  DeleteEnvironment: { operationId: 'deleteEnvironment', parameters: { model, env } },
});

/** The operations on one async request, from its model and id. */
const asyncRequestLinks = (model: string, request: string): ZodOpenApiLinksObject => ({
  GetAsyncRequest: { operationId: 'getAsyncRequest', parameters: { model, request } },
  CancelAsyncRequest: { operationId: 'cancelAsyncRequest', parameters: { model, request } },
  GetAsyncRequestById: { operationId: 'getAsyncRequestById', parameters: { request } },
});

/** The multipart body of a push. */
const pushBody = z
  .object({
    archive: z.string().meta({ format: 'binary', contentMediaType: 'application/gzip', description: 'The model directory as a .tar.gz' }),
    options: z.string().meta({ contentMediaType: 'application/json', description: 'The push options as JSON (schema PushOptions)' }),
  })
  .meta({ id: 'PushUpload' });

/** Baseten's four ways of naming the deployment an async route is for. */
const ASYNC_TARGETS: { path: string; name: string; params: z.ZodObject; what: string }[] = [
  { path: '/models/{model}/production', name: 'Production', params: modelPath, what: "the model's production environment" },
  { path: '/models/{model}/development', name: 'Development', params: modelPath, what: "the model's development deployment" },
  {
    path: '/models/{model}/environments/{env}',
    name: 'Environment',
    params: z.object({ model: modelParam, env: envParam }),
    what: 'an environment of the model',
  },
  {
    path: '/models/{model}/deployment/{deployment}',
    name: 'Deployment',
    params: z.object({ model: modelParam, deployment: z.string().meta({ description: "A deployment's id" }) }),
    what: 'one deployment',
  },
];

function asyncPaths(): ZodOpenApiPathsObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const target of ASYNC_TARGETS) {
    paths[`${target.path}/async_predict`] = {
      post: {
        operationId: `asyncPredict${target.name}`,
        tags: ['Async inference'],
        summary: `Queue an async prediction for ${target.what}`,
        description:
          "Baseten's async predict: the request is queued, run when a replica has room, and its result POSTed to `webhook_endpoint`. Answers 400 (not 422) for a bad request, as Baseten does.",
        requestParams: { path: target.params },
        requestBody: jsonBody(asyncPredictRequestSchema),
        responses: {
          '201': json('Queued', asyncPredictAcceptedSchema, asyncRequestLinks('$request.path.model', '$response.body#/request_id')),
          ...errors(400, 401, 404, 413, 503),
        },
      },
    };
    paths[`${target.path}/async_queue_status`] = {
      get: {
        operationId: `asyncQueueStatus${target.name}`,
        tags: ['Async inference'],
        summary: `Queued and running async requests of ${target.what}`,
        requestParams: { path: target.params },
        responses: { '200': json('The queue', asyncQueueStatusSchema), ...errors(400, 401, 404) },
      },
    };
  }
  const requestPath = z.object({ model: modelParam, request: z.string().meta({ description: "An async request's id" }) });
  paths['/models/{model}/async_request/{request}'] = {
    get: {
      operationId: 'getAsyncRequest',
      tags: ['Async inference'],
      summary: 'An async request: its status, errors and (while retained) output',
      requestParams: { path: requestPath },
      responses: { '200': json('The request', asyncRequestViewSchema), ...errors(400, 401, 404) },
    },
    delete: {
      operationId: 'cancelAsyncRequest',
      tags: ['Async inference'],
      summary: 'Cancel a queued async request',
      description: 'A request no longer queued is not canceled: the answer says so (`canceled: false`).',
      requestParams: { path: requestPath },
      responses: { '200': json('What became of the request', asyncCancelResultSchema), ...errors(400, 401, 404) },
    },
  };
  paths['/v1/async_requests/{request}'] = {
    get: {
      operationId: 'getAsyncRequestById',
      tags: ['Async inference'],
      summary: 'An async request by its id alone',
      requestParams: { path: z.object({ request: z.string().meta({ description: "An async request's id" }) }) },
      responses: { '200': json('The request', asyncRequestViewSchema), ...errors(400, 401, 404) },
    },
  };
  return paths;
}

function promotionActionPaths(): ZodOpenApiPathsObject {
  const paths: ZodOpenApiPathsObject = {};
  const words: Record<(typeof promotionActions)[number], { id: string; summary: string }> = {
    pause: { id: 'pausePromotion', summary: 'Pause the promotion in flight' },
    resume: { id: 'resumePromotion', summary: 'Resume a paused promotion' },
    cancel: { id: 'cancelPromotion', summary: 'Cancel the promotion in flight: traffic goes back to the previous deployment step by step' },
    force_cancel: { id: 'forceCancelPromotion', summary: 'Cancel the promotion in flight at once: all traffic back to the previous deployment' },
    force_roll_forward: { id: 'forceRollForwardPromotion', summary: 'Finish the promotion in flight at once: all traffic to the candidate' },
  };
  for (const action of promotionActions) {
    paths[`/v1/models/{model}/environments/{env}/${action}_promotion`] = {
      post: {
        operationId: words[action].id,
        tags: ['Promotions'],
        summary: words[action].summary,
        requestParams: { path: environmentPath },
        responses: {
          '200': json('The action took effect: the promotion as it is now', promotionViewSchema),
          '202': json('The action was accepted and waits for the step under way: the promotion with `pending_action`', promotionViewSchema),
          ...errors(400, 401, 404, 409, 503),
        },
      },
    };
  }
  return paths;
}

/** The document's paths, operation by operation. */
function paths(): ZodOpenApiPathsObject {
  return {
    '/healthz': {
      get: {
        operationId: 'health',
        tags: ['Meta'],
        summary: 'Whether the API is up (no key needed)',
        security: [],
        responses: { '200': json('Up', healthSchema) },
      },
    },
    '/v1/openapi.json': {
      get: {
        operationId: 'openApiDocument',
        tags: ['Meta'],
        summary: 'This document (no key needed)',
        security: [],
        responses: { '200': json('The OpenAPI 3.1 document', z.looseObject({ openapi: z.string() })) },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        tags: ['Meta'],
        summary: "The API's Prometheus metrics and the control plane's state (docs/metrics.md): the key as Api-Key or Bearer",
        responses: {
          '200': { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: z.string() } } },
          ...errors(401),
        },
      },
    },
    '/docs': {
      get: {
        operationId: 'apiReference',
        tags: ['Meta'],
        summary: 'This document rendered as a reference page (no key needed; the page loads its renderer from /docs/standalone.js)',
        security: [],
        responses: { '200': { description: 'The page', content: { 'text/html': { schema: z.string() } } } },
      },
    },
    '/docs/standalone.js': {
      get: {
        operationId: 'apiReferenceScript',
        tags: ['Meta'],
        summary: "The reference page's renderer (Scalar API Reference, bundled: nothing is fetched from the internet)",
        security: [],
        responses: { '200': { description: 'The script', content: { 'application/javascript': { schema: z.string() } } } },
      },
    },
    '/': {
      get: {
        operationId: 'dashboard',
        tags: ['Dashboard'],
        summary: 'The web dashboard (no key needed: the page signs in with one); its assets are under /dashboard/',
        security: [],
        responses: {
          '200': { description: 'The page', content: { 'text/html': { schema: z.string() } } },
          '503': { description: 'The dashboard is not built (`npm run build`)', content: { 'text/plain': { schema: z.string() } } },
        },
      },
    },
    '/v1/deployments': {
      post: {
        operationId: 'push',
        tags: ['Deployments'],
        summary: 'Push a model: a new published deployment, or an update of the development deployment',
        description:
          'multipart/form-data with one file part `archive` (the model directory as .tar.gz) and a field `options` (JSON, schema PushOptions). A published push answers 201 with the deployment, which then builds and deploys (its `status` moves from BUILDING; a package that unpacks past GANTRY_PACKAGE_MAX_UNPACKED_BYTES or GANTRY_PACKAGE_MAX_FILES ends BUILD_FAILED, naming the setting); a development push answers the deployment with `development_update`, 201 when it created the deployment, 200 when it updated it (new code past the package limits is refused 422).',
        requestBody: { required: true, content: { 'multipart/form-data': { schema: pushBody } } },
        responses: {
          '201': json('Created: the deployment (with `development_update` for a development push)', z.union([deploymentViewSchema, developmentPushAnswerSchema])),
          '200': json('A development deployment updated: what the push did', developmentPushAnswerSchema),
          ...errors(400, 401, 404, 409, 413, 422),
          '503': {
            description: 'GANTRY_MAX_CONCURRENT_UPLOADS pushes are being received already (`too_many_uploads`: try again after Retry-After), or Temporal is unreachable',
            headers: { 'Retry-After': { description: 'Seconds to wait before pushing again (sent with `too_many_uploads`)', schema: { type: 'integer' } } },
            content: { 'application/json': { schema: apiErrorBodySchema } },
          },
        },
      },
    },
    '/v1/models': {
      get: {
        operationId: 'listModels',
        tags: ['Models'],
        summary: 'Every model',
        responses: {
          '200': json('The models', z.strictObject({ models: z.array(modelViewSchema) }), modelLinks('$response.body#/models/0/id')),
          ...errors(400, 401),
        },
      },
    },
    '/v1/models/{model}': {
      get: {
        operationId: 'getModel',
        tags: ['Models'],
        summary: 'One model, by id or name',
        requestParams: { path: modelPath },
        responses: { '200': json('The model', modelViewSchema, modelLinks('$response.body#/id')), ...errors(400, 401, 404) },
      },
    },
    '/v1/models/{model}/deployments': {
      get: {
        operationId: 'listDeployments',
        tags: ['Deployments'],
        summary: "A model's deployments, optionally filtered by labels",
        requestParams: { path: modelPath, query: deploymentListQuerySchema },
        responses: {
          '200': json(
            'The deployments',
            z.strictObject({ deployments: z.array(deploymentViewSchema) }),
            deploymentLinks('$request.path.model', '$response.body#/deployments/0/id'),
          ),
          ...errors(400, 401, 404, 422),
        },
      },
    },
    '/v1/models/{model}/deployments/{ref}': {
      get: {
        operationId: 'getDeployment',
        tags: ['Deployments'],
        summary: 'One deployment',
        requestParams: { path: deploymentPath },
        responses: { '200': json('The deployment', deploymentViewSchema), ...errors(400, 401, 404) },
      },
      patch: {
        operationId: 'updateDeployment',
        tags: ['Deployments'],
        summary: 'Rename a deployment or replace its labels',
        requestParams: { path: deploymentPath },
        requestBody: jsonBody(updateDeploymentSchema),
        responses: { '200': json('The deployment', deploymentViewSchema), ...errors(400, 401, 404, 409, 413, 422) },
      },
      delete: {
        operationId: 'deleteDeployment',
        tags: ['Deployments'],
        summary: 'Delete a deployment that serves no environment and no promotion (it stays in the usage log)',
        requestParams: { path: deploymentPath },
        responses: { '204': { description: 'Deleted' }, ...errors(400, 401, 404, 409) },
      },
    },
    '/v1/models/{model}/deployments/{ref}/deactivate': {
      post: {
        operationId: 'deactivateDeployment',
        tags: ['Deployments'],
        summary: 'Stop serving a deployment (its replicas stop; it can be activated again)',
        requestParams: { path: deploymentPath },
        responses: { '200': json('The deployment', deploymentViewSchema), ...errors(400, 401, 404, 409) },
      },
    },
    '/v1/models/{model}/deployments/{ref}/activate': {
      post: {
        operationId: 'activateDeployment',
        tags: ['Deployments'],
        summary: 'Serve a deactivated deployment again',
        requestParams: { path: deploymentPath },
        responses: { '200': json('The deployment', deploymentViewSchema), ...errors(400, 401, 404, 409) },
      },
    },
    '/v1/models/{model}/deployments/{ref}/autoscaling_settings': {
      patch: {
        operationId: 'updateAutoscalingSettings',
        tags: ['Deployments'],
        summary: "Change a deployment's replica bounds and autoscaling (any subset of the fields)",
        requestParams: { path: deploymentPath },
        requestBody: jsonBody(autoscalingSettingsPatchSchema),
        responses: { '200': json('The deployment', deploymentViewSchema), ...errors(400, 401, 404, 409, 413, 422) },
      },
    },
    '/v1/models/{model}/deployments/{ref}/logs': {
      get: {
        operationId: 'getDeploymentLogs',
        tags: ['Deployments'],
        summary: "The tail of a deployment's build and replica log; with `follow=true`, a stream of it",
        requestParams: { path: deploymentPath, query: logsQuerySchema },
        responses: {
          '200': {
            description:
              'The last `tail` entries as JSON; with `follow=true`, server-sent `log` events (data `{"entries": [...]}`, schema DeploymentLogs without `deployment_id`), the tail first, then each new line',
            content: {
              'application/json': { schema: deploymentLogsSchema },
              'text/event-stream': { schema: sseEvent('log', 'LogEventData') },
            },
          },
          ...errors(400, 401, 404, 422),
        },
      },
    },
    '/v1/models/{model}/deployments/{ref}/predict': {
      post: {
        operationId: 'predictThroughApi',
        tags: ['Inference'],
        summary: "A prediction sent through the API to the gateway (the dashboard's playground)",
        description: `The body goes to the deployment's predict route on the gateway with the caller's key; the gateway's answer comes back as it is (status, content type, body, streamed chunk by chunk, and \`${DEPLOYMENT_ID_HEADER}\`). Its statuses are the gateway's (docs/inference.md) and the model's.`,
        requestParams: { path: deploymentPath },
        requestBody: { required: true, content: { 'application/json': { schema: z.record(z.string(), z.unknown()).meta({ description: "The model's input (a JSON object)" }) } } },
        responses: {
          '200': {
            description: "The model's answer",
            headers: z.object({ [DEPLOYMENT_ID_HEADER]: z.string().meta({ description: 'The deployment that served the request' }) }),
            content: { 'application/json': { schema: z.unknown() }, 'application/x-ndjson': { schema: z.string() }, 'text/plain': { schema: z.string() } },
          },
          ...errors(400, 401, 404, 413, 502, 503),
          '504': { description: 'The model did not answer within its `predict_timeout_seconds`', content: { 'application/json': { schema: apiErrorBodySchema } } },
        },
      },
    },
    '/v1/models/{model}/deployments/development/watch_heartbeat': {
      post: {
        operationId: 'developmentWatchHeartbeat',
        tags: ['Development'],
        summary: '`gantry push --watch` is still watching (keeps the development deployment awake)',
        requestParams: { path: modelPath },
        responses: { '200': json('The development deployment', deploymentViewSchema), ...errors(400, 401, 404) },
      },
    },
    '/v1/models/{model}/deployments/development/promote': {
      post: {
        operationId: 'promoteDevelopment',
        tags: ['Development'],
        summary: "Publish the development deployment's code as a new published deployment",
        requestParams: { path: modelPath },
        responses: { '201': json('The new published deployment', deploymentViewSchema), ...errors(400, 401, 404, 409, 503) },
      },
    },
    '/v1/usage': {
      get: {
        operationId: 'getUsage',
        tags: ['Usage'],
        summary: 'Replica-seconds and requests per deployment per hour (default: the last 24 hours; at most 93 days)',
        requestParams: { query: usageQuerySchema },
        responses: { '200': json('The usage', usageReportSchema), ...errors(400, 401, 422) },
      },
    },
    '/v1/models/{model}/environments': {
      get: {
        operationId: 'listEnvironments',
        tags: ['Environments'],
        summary: "A model's environments",
        requestParams: { path: modelPath },
        responses: {
          '200': json(
            'The environments',
            z.strictObject({ environments: z.array(environmentViewSchema) }),
            environmentLinks('$request.path.model', '$response.body#/environments/0/name'),
          ),
          ...errors(400, 401, 404),
        },
      },
      post: {
        operationId: 'createEnvironment',
        tags: ['Environments'],
        summary: 'Create a custom environment',
        requestParams: { path: modelPath },
        requestBody: jsonBody(createEnvironmentSchema),
        responses: {
          '201': json('The environment', environmentViewSchema, environmentLinks('$request.path.model', '$response.body#/name')),
          ...errors(400, 401, 404, 409, 413, 422),
        },
      },
    },
    '/v1/models/{model}/environments/{env}': {
      get: {
        operationId: 'getEnvironment',
        tags: ['Environments'],
        summary: 'One environment with its current deployment and the promotion in flight',
        requestParams: { path: environmentPath },
        responses: { '200': json('The environment', environmentViewSchema), ...errors(400, 401, 404) },
      },
      patch: {
        operationId: 'updateEnvironment',
        tags: ['Environments'],
        summary: "Change an environment's promotion settings (merged field by field)",
        requestParams: { path: environmentPath },
        requestBody: jsonBody(updateEnvironmentSchema),
        responses: { '200': json('The environment', environmentViewSchema), ...errors(400, 401, 404, 413, 422) },
      },
      delete: {
        operationId: 'deleteEnvironment',
        tags: ['Environments'],
        summary: 'Delete a custom environment (not production, not while a promotion is in flight)',
        requestParams: { path: environmentPath },
        responses: { '204': { description: 'Deleted' }, ...errors(400, 401, 404, 409, 503) },
      },
    },
    '/v1/models/{model}/environments/{env}/promote': {
      post: {
        operationId: 'promote',
        tags: ['Promotions'],
        summary: 'Promote a deployment to an environment (a rolling promotion by its settings)',
        requestParams: { path: environmentPath },
        requestBody: jsonBody(promoteRequestSchema),
        responses: { '202': json('The promotion, started', promotionViewSchema), ...errors(400, 401, 404, 409, 413, 422, 503) },
      },
    },
    '/v1/models/{model}/environments/{env}/promotions': {
      get: {
        operationId: 'listPromotions',
        tags: ['Promotions'],
        summary: "An environment's promotions, newest first",
        requestParams: { path: environmentPath },
        responses: { '200': json('The promotions', z.strictObject({ promotions: z.array(promotionViewSchema) })), ...errors(400, 401, 404) },
      },
    },
    '/v1/models/{model}/environments/{env}/promotion': {
      get: {
        operationId: 'getPromotion',
        tags: ['Promotions'],
        summary: "The environment's promotion in flight, or its last one",
        requestParams: { path: environmentPath },
        responses: { '200': json('The promotion', promotionViewSchema), ...errors(400, 401, 404) },
      },
    },
    ...promotionActionPaths(),
    '/v1/models/{model}/audit_logs': {
      get: {
        operationId: 'listModelAuditLogs',
        tags: ['Audit'],
        summary: "A model's audit log, newest first (the last 1000 entries)",
        requestParams: { path: modelPath },
        responses: { '200': json('The entries', z.strictObject({ audit_logs: z.array(auditEntrySchema) })), ...errors(400, 401, 404) },
      },
    },
    '/v1/audit_logs': {
      get: {
        operationId: 'listAuditLogs',
        tags: ['Audit'],
        summary: 'The audit entries of no model (secrets), newest first',
        responses: { '200': json('The entries', z.strictObject({ audit_logs: z.array(auditEntrySchema) })), ...errors(400, 401) },
      },
    },
    '/v1/secrets': {
      get: {
        operationId: 'listSecrets',
        tags: ['Secrets'],
        summary: 'Every secret: names and dates, never values',
        responses: { '200': json('The secrets', z.strictObject({ secrets: z.array(secretViewSchema) })), ...errors(400, 401) },
      },
      post: {
        operationId: 'upsertSecret',
        tags: ['Secrets'],
        summary: "Create a secret or rotate its value (Baseten's upsert)",
        requestBody: jsonBody(upsertSecretSchema),
        responses: {
          '200': json('The secret (never its value)', secretViewSchema, {
            DeleteSecret: { operationId: 'deleteSecret', parameters: { name: '$response.body#/name' } },
          }),
          ...errors(400, 401, 413, 422),
        },
      },
    },
    '/v1/secrets/{name}': {
      delete: {
        operationId: 'deleteSecret',
        tags: ['Secrets'],
        summary: 'Delete a secret (replicas that declare it keep the value they started with)',
        requestParams: { path: z.object({ name: z.string().meta({ description: "The secret's name" }) }) },
        responses: { '200': json('Deleted', secretDeletedSchema), ...errors(400, 401, 404, 422) },
      },
    },
    '/v1/events': {
      get: {
        operationId: 'events',
        tags: ['Dashboard'],
        summary: 'Live views for the dashboard, as server-sent events',
        description:
          'Without `model`: `models` events (data `{"models": [ModelOverview]}`); with `model` (id or name): `model` events (data ModelDetail). Each is sent at once, then again whenever it has changed.',
        requestParams: { query: eventsQuerySchema },
        responses: {
          '200': eventStream('The stream (it stays open)', z.union([sseEvent('models', 'ModelsEventData'), sseEvent('model', 'ModelDetail')])),
          ...errors(400, 401, 404, 422),
        },
      },
    },
    ...asyncPaths(),
  };
}

/** Builds the management API's OpenAPI 3.1 document. */
export function openApiDocument(): oas31.OpenAPIObject {
  const document = createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'Gantry management API',
        version: API_VERSION,
        description:
          'Gantry\'s management API: push models, manage deployments, environments, promotions, secrets and async inference. Every route but /healthz, /v1/openapi.json, /docs and the dashboard\'s page takes `Authorization: Api-Key <key>`. Errors are `{"error": {"code", "message", "details"?}}`. Predictions go to the gateway (docs/inference.md); the async inference routes are served here at Baseten\'s paths and passed on by the gateway too.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      servers: [{ url: '/', description: 'The API that serves this document (http://127.0.0.1:8080 for `npm start` with the default ports)' }],
      security: [{ ApiKey: [] }],
      tags: [
        { name: 'Models' },
        { name: 'Deployments' },
        { name: 'Development' },
        { name: 'Environments' },
        { name: 'Promotions' },
        { name: 'Secrets' },
        { name: 'Async inference' },
        { name: 'Inference' },
        { name: 'Usage' },
        { name: 'Audit' },
        { name: 'Dashboard' },
        { name: 'Meta' },
      ],
      components: {
        securitySchemes: {
          ApiKey: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Api-Key <key>` (the key `npm start` prints, or one from `gantry`)' },
        },
        schemas: { PushOptions: pushOptionsSchema.meta({ unusedIO: 'input' }) },
      },
      paths: paths(),
    },
    { override: plainer },
  );
  addEventDataSchemas(document);
  return document;
}

/**
 * Adds the components the events' `contentSchema`s name. They are rendered as answers, on their
 * own: registered with the document, zod-openapi would also render them as input and rename
 * the answers they share (Environment → EnvironmentOutput).
 */
function addEventDataSchemas(document: oas31.OpenAPIObject): void {
  document.components ??= {};
  document.components.schemas ??= {};
  const schemas = document.components.schemas;
  for (const [id, schema] of Object.entries({ ModelsEventData: modelsEventData, ModelDetail: modelDetailSchema, LogEventData: logEventData })) {
    const rendered = createSchema(schema, { io: 'output', opts: { override: plainer } });
    for (const [name, component] of Object.entries(rendered.components)) {
      const existing = schemas[name];
      if (existing && JSON.stringify(existing) !== JSON.stringify(component)) throw new Error(`component ${name} is rendered two ways`);
      schemas[name] = component;
    }
    if (!schemas[id]) throw new Error(`component ${id} was not rendered`);
  }
}

/**
 * Leaves out what zod writes only to be exact about JavaScript: the regular expression behind
 * `format: date-time` (the format says it) and the safe-integer bounds of every integer.
 */
function plainer({ jsonSchema }: { jsonSchema: { format?: string; pattern?: string; minimum?: number; maximum?: number } }): void {
  if (jsonSchema.format === 'date-time') delete jsonSchema.pattern;
  if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
  if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
}
