/**
 * The JSON shapes the API answers with, and the events of its live stream: the contract between
 * the API, the CLI and the dashboard. Each shape is a zod schema (the OpenAPI document's
 * responses are generated from them, src/api/openapi.ts) with its type inferred under the name
 * the code uses. The browser bundle imports types and constants only.
 */
import { z } from 'zod';
import { ASYNC_REQUEST_ERROR_CODES } from './constants';
import { promotionStatuses, type PromotionActionRecord } from './promotion-status';
import { autoscalingSettingsSchema, deploymentStatuses, labelsSchema, promotionActions, promotionSettingsSchema } from './schemas';
import { SECRET_TEAM_NAME } from './secrets';

/** An ISO 8601 time as the API writes it (`Date.toISOString()`). */
const isoTime = z.iso.datetime({ offset: true });

/** Published deployments are immutable; a model's one development deployment is live-reloaded. */
export const deploymentKindSchema = z.enum(['published', 'development']);
/** Published deployments are immutable; a model's one development deployment is live-reloaded. */
export type DeploymentKind = z.infer<typeof deploymentKindSchema>;

/** A deployment as the API shows it. */
export const deploymentViewSchema = z
  .strictObject({
    id: z.string(),
    model_id: z.string(),
    name: z.string(),
    kind: deploymentKindSchema,
    is_production: z.boolean(),
    is_development: z.boolean(),
    status: z.enum(deploymentStatuses),
    status_message: z.string().nullable(),
    labels: labelsSchema,
    autoscaling_settings: autoscalingSettingsSchema,
    /** Environments whose current deployment this is. */
    environments: z.array(z.string()).meta({ description: 'Environments whose current deployment this is.' }),
    replicas: z.strictObject({ desired: z.number().int(), ready: z.number().int(), starting: z.number().int() }),
    active_replica_count: z.number().int(),
    /** The code revision it serves: 0 for a published deployment, counting up with each development update. */
    revision: z.number().int().meta({ description: 'The code revision it serves: 0 for a published deployment, counting up with each development update.' }),
    created_at: isoTime,
    updated_at: isoTime,
  })
  .meta({ id: 'Deployment', description: 'A deployment as the API shows it.' });
/** A deployment as the API shows it. */
export type DeploymentView = z.infer<typeof deploymentViewSchema>;

/** A model as the API shows it. */
export const modelViewSchema = z
  .strictObject({
    id: z.string(),
    name: z.string(),
    production_deployment_id: z.string().nullable(),
    development_deployment_id: z.string().nullable(),
    deployment_count: z.number().int(),
    created_at: isoTime,
  })
  .meta({ id: 'Model', description: 'A model as the API shows it.' });
/** A model as the API shows it. */
export type ModelView = z.infer<typeof modelViewSchema>;

/** One action taken on a promotion, as its status lists it (the workflow's PromotionActionRecord). */
export const promotionActionRecordSchema: z.ZodType<PromotionActionRecord> = z
  .strictObject({
    action: z.enum(['PROMOTE', 'PAUSE', 'RESUME', 'GRACEFUL_CANCEL', 'FORCE_CANCEL', 'FORCE_ROLL_FORWARD']),
    actor: z.string(),
    at: isoTime,
    outcome: z.enum(['applied', 'ignored']),
    status: z.enum(promotionStatuses),
  })
  .meta({ id: 'PromotionActionRecord' });

/** A promotion as the API shows it: its record, with the live workflow state while in flight. */
export const promotionViewSchema = z
  .strictObject({
    id: z.string(),
    model_id: z.string(),
    environment: z.string(),
    status: z.enum(promotionStatuses),
    candidate_deployment_id: z.string(),
    previous_deployment_id: z.string().nullable(),
    step: z.number().int(),
    total_steps: z.number().int(),
    percent_traffic_to_new_version: z.number(),
    candidate_replicas: z.number().int(),
    previous_replicas: z.number().int(),
    pending_action: z.string().nullable(),
    message: z.string().nullable(),
    actor: z.string(),
    started_at: isoTime,
    updated_at: isoTime,
    ended_at: isoTime.nullable(),
    actions: z.array(promotionActionRecordSchema).optional(),
    /** The actions the state × action table accepts now (none once ended, or while its workflow cannot be asked). */
    allowed_actions: z
      .array(z.enum(promotionActions))
      .meta({ description: 'The actions the state × action table accepts now (none once ended, or while its workflow cannot be asked).' }),
  })
  .meta({ id: 'Promotion', description: 'A promotion: its record, with the live workflow state while in flight.' });
/** A promotion as the API shows it: its record, with the live workflow state while in flight. */
export type PromotionView = z.infer<typeof promotionViewSchema>;

/** An environment as the API shows it. */
export const environmentViewSchema = z
  .strictObject({
    model_id: z.string(),
    name: z.string(),
    promotion_settings: promotionSettingsSchema,
    current_deployment: deploymentViewSchema.nullable(),
    candidate_deployment: deploymentViewSchema.nullable(),
    in_progress_promotion: promotionViewSchema.nullable(),
    created_at: isoTime,
    updated_at: isoTime,
  })
  .meta({ id: 'Environment', description: 'An environment as the API shows it.' });
/** An environment as the API shows it. */
export type EnvironmentView = z.infer<typeof environmentViewSchema>;

/** Where an audited action came from: an API key through the API (`api`), the CLI or the dashboard; a Temporal signal or cancel; the repair loop; Gantry itself. */
export const auditSourceSchema = z.enum(['api', 'cli', 'dashboard', 'temporal', 'repair', 'gantry']);
/** Where an audited action came from. */
export type AuditSource = z.infer<typeof auditSourceSchema>;

export { API_CLIENT_SOURCES, CLIENT_HEADER, type ApiClientSource } from './constants';

/** One line of a model's audit log. */
export const auditEntrySchema = z
  .strictObject({
    id: z.number().int(),
    model_id: z.string().nullable(),
    actor: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    /** Where it came from. */
    source: auditSourceSchema,
    at: isoTime,
  })
  .meta({ id: 'AuditEntry', description: 'One line of an audit log.' });
/** One line of a model's audit log. */
export type AuditEntry = z.infer<typeof auditEntrySchema>;

/** One deployment's usage over a range, by hour. */
export const deploymentUsageSchema = z
  .strictObject({
    deployment_id: z.string(),
    deployment_name: z.string(),
    model_id: z.string(),
    model_name: z.string(),
    labels: labelsSchema,
    deleted_at: isoTime.nullable(),
    replica_seconds: z.number(),
    requests: z.number().int(),
    hours: z.array(z.strictObject({ hour: isoTime, replica_seconds: z.number(), requests: z.number().int() })),
  })
  .meta({ id: 'DeploymentUsage', description: "One deployment's usage over a range, by hour." });
/** One deployment's usage over a range, by hour. */
export type DeploymentUsage = z.infer<typeof deploymentUsageSchema>;

/** What GET /v1/usage answers. */
export const usageReportSchema = z.strictObject({ start: isoTime, end: isoTime, deployments: z.array(deploymentUsageSchema) }).meta({ id: 'UsageReport' });
/** What GET /v1/usage answers. */
export type UsageReport = z.infer<typeof usageReportSchema>;

/** A model with every deployment it has, as the models page lists it. */
export const modelOverviewSchema = z.strictObject({ model: modelViewSchema, deployments: z.array(deploymentViewSchema) }).meta({ id: 'ModelOverview' });
/** A model with every deployment it has, as the models page lists it. */
export type ModelOverview = z.infer<typeof modelOverviewSchema>;

/** Where the Temporal Web UI shows a workflow: `{url}/namespaces/{namespace}/workflows/{workflow id}`. */
export const temporalUiLinkSchema = z.strictObject({ url: z.string(), namespace: z.string() }).meta({ id: 'TemporalUiLink' });
/** Where the Temporal Web UI shows a workflow. */
export type TemporalUiLink = z.infer<typeof temporalUiLinkSchema>;

/** Everything the model page shows that changes as the model is worked on. */
export const modelDetailSchema = z
  .strictObject({
    model: modelViewSchema,
    /** The Temporal Web UI, when the stack knows one. */
    temporal_ui: temporalUiLinkSchema.nullable(),
    deployments: z.array(deploymentViewSchema),
    environments: z.array(environmentViewSchema),
    /** The newest entries of the model's audit log, newest first. */
    audit_logs: z.array(auditEntrySchema),
  })
  .meta({ id: 'ModelDetail' });
/** Everything the model page shows that changes as the model is worked on. */
export type ModelDetail = z.infer<typeof modelDetailSchema>;

/** One event of `GET /v1/events`: its SSE event name and its JSON data. */
export type LiveEvent =
  /** Every model (the stream without a `model` filter), sent at once and whenever it changes. */
  | { event: 'models'; data: { models: ModelOverview[] } }
  /** One model (the stream with `?model=`), sent at once and whenever it changes. */
  | { event: 'model'; data: ModelDetail };

/** One line of a deployment's log (build output, status changes, replica output). */
export const logEntrySchema = z
  .strictObject({
    ts: isoTime,
    /** `build`, `gantry` (status changes) or `replica-<id>`. */
    source: z.string().meta({ description: '`build`, `gantry` (status changes) or `replica-<id>`.' }),
    message: z.string(),
  })
  .meta({ id: 'LogEntry' });
/** One line of a deployment's log. */
export type LogEntry = z.infer<typeof logEntrySchema>;

/** What GET …/logs answers (and, with `follow=true`, the data of each `log` event, without `deployment_id`). */
export const deploymentLogsSchema = z.strictObject({ deployment_id: z.string(), entries: z.array(logEntrySchema) }).meta({ id: 'DeploymentLogs' });
/** The tail of a deployment's log. */
export type DeploymentLogs = z.infer<typeof deploymentLogsSchema>;

/** What a development push did, beside the deployment it answers (`development_update`). */
export const developmentUpdateSchema = z
  .strictObject({
    update: z.enum(['created', 'reloaded', 'woken', 'rebuilding', 'failed']).meta({
      description:
        'created: the first build started; reloaded: the replica runs the new code; woken: the sleeping deployment started on the new code; rebuilding: requirements changed, a rebuild started; failed: the new code did not load and the previous code keeps serving.',
    }),
    revision: z.number().int(),
    seconds: z.number().optional(),
    error: z.string().optional(),
  })
  .meta({ id: 'DevelopmentUpdate' });
/** What a development push did. */
export type DevelopmentUpdate = z.infer<typeof developmentUpdateSchema>;

/** What a development push (POST /v1/deployments with `development: true`) answers: the deployment and what the push did to it. */
export const developmentPushAnswerSchema = deploymentViewSchema.extend({ development_update: developmentUpdateSchema }).meta({ id: 'DevelopmentPushAnswer' });
/** What a development push answers. */
export type DevelopmentPushAnswer = z.infer<typeof developmentPushAnswerSchema>;

/** A secret as the API shows it (Baseten's SecretV1): never its value. */
export const secretViewSchema = z
  .strictObject({
    /** Stable across rotation. */
    id: z.string().meta({ description: 'Stable across rotation.' }),
    name: z.string(),
    created_at: isoTime,
    team_name: z.literal(SECRET_TEAM_NAME),
  })
  .meta({ id: 'Secret', description: "A secret (Baseten's SecretV1): never its value." });
/** A secret as the API shows it (Baseten's SecretV1): never its value. */
export type SecretView = z.infer<typeof secretViewSchema>;

/** What DELETE /v1/secrets/{name} answers (Baseten's SecretTombstoneV1). */
export const secretDeletedSchema = z.strictObject({ name: z.string() }).meta({ id: 'SecretDeleted' });
/** What DELETE /v1/secrets/{name} answers. */
export type SecretDeleted = z.infer<typeof secretDeletedSchema>;

/** What GET /healthz answers. */
export const healthSchema = z.strictObject({ status: z.literal('ok') });
/** What GET /healthz answers. */
export type Health = z.infer<typeof healthSchema>;

/** The body of every error answer: `{"error": {"code", "message", "details"?}}`. */
export const apiErrorBodySchema = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({ description: 'not_found, conflict, invalid, unavailable, unauthorized, bad_request, payload_too_large, gateway_unreachable' }),
      message: z.string(),
      /** For `invalid` input: each bad field and what is wrong with it; for a refusal, what it clashed with. */
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'An error answer.' });
/** The body of every error answer. */
export type ApiErrorBody = z.infer<typeof apiErrorBodySchema>;

/** Where an async request is (Baseten's statuses). */
export const asyncRequestStatusSchema = z.enum(['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELED', 'WEBHOOK_FAILED']);
/** Where an async request is (Baseten's statuses). */
export type AsyncRequestStatus = z.infer<typeof asyncRequestStatusSchema>;

/** Statuses an async request never leaves (WEBHOOK_FAILED included). */
export const FINAL_ASYNC_STATUSES: readonly AsyncRequestStatus[] = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELED', 'WEBHOOK_FAILED'];

/** Where the delivery of an async request's result to its webhook is. */
export const webhookStatusSchema = z.enum(['PENDING', 'SUCCEEDED', 'FAILED', 'CANCELED', 'NO_WEBHOOK_PROVIDED']);
/** Where the delivery of an async request's result to its webhook is. */
export type WebhookStatus = z.infer<typeof webhookStatusSchema>;

/** The error codes of an async request (Baseten's AsyncRequestError codes). */
export const asyncRequestErrorCodeSchema = z.enum(ASYNC_REQUEST_ERROR_CODES);
/** The error codes of an async request. */
export type AsyncRequestErrorCode = z.infer<typeof asyncRequestErrorCodeSchema>;

/** One error of an async request (Baseten's AsyncRequestError). */
export const asyncRequestErrorSchema = z.strictObject({ code: asyncRequestErrorCodeSchema, message: z.string() }).meta({ id: 'AsyncRequestError' });
/** One error of an async request. */
export type AsyncRequestError = z.infer<typeof asyncRequestErrorSchema>;

/** What POST …/async_predict answers (201). */
export const asyncPredictAcceptedSchema = z.strictObject({ request_id: z.string() }).meta({ id: 'AsyncPredictAccepted' });
/** What POST …/async_predict answers (201). */
export type AsyncPredictAccepted = z.infer<typeof asyncPredictAcceptedSchema>;

/** What GET …/async_request/{id} answers: Baseten's AsyncRequestStatusResponse plus Gantry's extras. */
export const asyncRequestViewSchema = z
  .strictObject({
    request_id: z.string(),
    model_id: z.string(),
    deployment_id: z.string(),
    status: asyncRequestStatusSchema,
    webhook_status: webhookStatusSchema,
    created_at: isoTime,
    status_at: isoTime,
    errors: z.array(asyncRequestErrorSchema),
    /** The model's answer (parsed when it is JSON), while it is retained; absent otherwise. */
    output: z.unknown().optional().meta({ description: "The model's answer (parsed when it is JSON), while it is retained; absent otherwise." }),
    /** Predict attempts made so far. */
    attempts: z.number().int(),
    priority: z.number().int(),
    /** The environment the request was addressed to, when it was. */
    environment: z.string().optional(),
    started_at: isoTime.nullable(),
    ended_at: isoTime.nullable(),
  })
  .meta({ id: 'AsyncRequest', description: "Baseten's AsyncRequestStatusResponse plus Gantry's extras." });
/** What GET …/async_request/{id} answers. */
export type AsyncRequestView = z.infer<typeof asyncRequestViewSchema>;

/** What DELETE …/async_request/{id} answers. */
export const asyncCancelResultSchema = z.strictObject({ request_id: z.string(), canceled: z.boolean(), message: z.string() }).meta({ id: 'AsyncCancelResult' });
/** What DELETE …/async_request/{id} answers. */
export type AsyncCancelResult = z.infer<typeof asyncCancelResultSchema>;

/** What GET …/async_queue_status answers. */
export const asyncQueueStatusSchema = z
  .strictObject({
    model_id: z.string(),
    deployment_id: z.string(),
    num_queued_requests: z.number().int(),
    num_in_progress_requests: z.number().int(),
  })
  .meta({ id: 'AsyncQueueStatus' });
/** What GET …/async_queue_status answers. */
export type AsyncQueueStatus = z.infer<typeof asyncQueueStatusSchema>;

/** The body POSTed to an async request's webhook. */
export const asyncWebhookPayloadSchema = z
  .strictObject({
    request_id: z.string(),
    model_id: z.string(),
    deployment_id: z.string(),
    type: z.literal('async_request_completed'),
    time: isoTime,
    /** The model's answer: parsed JSON when it is JSON, else its text; null when there is none. */
    data: z.unknown(),
    errors: z.array(asyncRequestErrorSchema),
  })
  .meta({ id: 'AsyncWebhookPayload' });
/** The body POSTed to an async request's webhook. */
export type AsyncWebhookPayload = z.infer<typeof asyncWebhookPayloadSchema>;

/** The header carrying the webhook body's signature: `v1=<hex HMAC-SHA256 of the body>` (Baseten's name and format). */
export const WEBHOOK_SIGNATURE_HEADER = 'x-baseten-signature';
/** The header naming the async request a webhook delivery is for. */
export const WEBHOOK_REQUEST_ID_HEADER = 'x-gantry-request-id';
