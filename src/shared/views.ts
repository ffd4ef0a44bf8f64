/**
 * The JSON shapes the API answers with, and the events of its live stream: the contract between
 * the API, the CLI and the dashboard. Types and constants only, so that the browser bundle can use them too.
 */
import type { PromotionActionRecord, PromotionStatusName } from './promotion-status';
import type { AutoscalingSettings, DeploymentStatus, Labels, PromotionAction, PromotionSettings } from './schemas';

/** Published deployments are immutable; a model's one development deployment is live-reloaded. */
export type DeploymentKind = 'published' | 'development';

/** A deployment as the API shows it. */
export interface DeploymentView {
  id: string;
  model_id: string;
  name: string;
  kind: DeploymentKind;
  is_production: boolean;
  is_development: boolean;
  status: DeploymentStatus;
  status_message: string | null;
  labels: Labels;
  autoscaling_settings: AutoscalingSettings;
  /** Environments whose current deployment this is. */
  environments: string[];
  replicas: { desired: number; ready: number; starting: number };
  active_replica_count: number;
  /** The code revision it serves: 0 for a published deployment, counting up with each development update. */
  revision: number;
  created_at: string;
  updated_at: string;
}

/** A model as the API shows it. */
export interface ModelView {
  id: string;
  name: string;
  production_deployment_id: string | null;
  development_deployment_id: string | null;
  deployment_count: number;
  created_at: string;
}

/** An environment as the API shows it. */
export interface EnvironmentView {
  model_id: string;
  name: string;
  promotion_settings: PromotionSettings;
  current_deployment: DeploymentView | null;
  candidate_deployment: DeploymentView | null;
  in_progress_promotion: PromotionView | null;
  created_at: string;
  updated_at: string;
}

/** A promotion as the API shows it: its record, with the live workflow state while in flight. */
export interface PromotionView {
  id: string;
  model_id: string;
  environment: string;
  status: PromotionStatusName;
  candidate_deployment_id: string;
  previous_deployment_id: string | null;
  step: number;
  total_steps: number;
  percent_traffic_to_new_version: number;
  candidate_replicas: number;
  previous_replicas: number;
  pending_action: string | null;
  message: string | null;
  actor: string;
  started_at: string;
  updated_at: string;
  ended_at: string | null;
  actions?: PromotionActionRecord[];
  /** The actions the state × action table accepts now (none once ended, or while its workflow cannot be asked). */
  allowed_actions: PromotionAction[];
}

/** Where an audited action came from: an API key through the API (`api`), the CLI or the dashboard; a Temporal signal or cancel; the repair loop; Gantry itself. */
export type AuditSource = 'api' | 'cli' | 'dashboard' | 'temporal' | 'repair' | 'gantry';

/** The sources an API client names itself as (`X-Gantry-Client`); any other caller is `api`. */
export const API_CLIENT_SOURCES = ['cli', 'dashboard'] as const;

/** How an API call was made: the CLI, the dashboard, or any other client. */
export type ApiClientSource = 'api' | (typeof API_CLIENT_SOURCES)[number];

/** The header a client names itself in. */
export const CLIENT_HEADER = 'x-gantry-client';

/** One line of a model's audit log. */
export interface AuditEntry {
  id: number;
  model_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  /** Where it came from. */
  source: AuditSource;
  at: string;
}

/** One deployment's usage over a range, by hour. */
export interface DeploymentUsage {
  deployment_id: string;
  deployment_name: string;
  model_id: string;
  model_name: string;
  labels: Labels;
  deleted_at: string | null;
  replica_seconds: number;
  requests: number;
  hours: { hour: string; replica_seconds: number; requests: number }[];
}

/** What GET /v1/usage answers. */
export interface UsageReport {
  start: string;
  end: string;
  deployments: DeploymentUsage[];
}

/** A model with every deployment it has, as the models page lists it. */
export interface ModelOverview {
  model: ModelView;
  deployments: DeploymentView[];
}

/** Where the Temporal Web UI shows a workflow: `{url}/namespaces/{namespace}/workflows/{workflow id}`. */
export interface TemporalUiLink {
  url: string;
  namespace: string;
}

/** Everything the model page shows that changes as the model is worked on. */
export interface ModelDetail {
  model: ModelView;
  /** The Temporal Web UI, when the stack knows one. */
  temporal_ui: TemporalUiLink | null;
  deployments: DeploymentView[];
  environments: EnvironmentView[];
  /** The newest entries of the model's audit log, newest first. */
  audit_logs: AuditEntry[];
}

/** One event of `GET /v1/events`: its SSE event name and its JSON data. */
export type LiveEvent =
  /** Every model (the stream without a `model` filter), sent at once and whenever it changes. */
  | { event: 'models'; data: { models: ModelOverview[] } }
  /** One model (the stream with `?model=`), sent at once and whenever it changes. */
  | { event: 'model'; data: ModelDetail };

/** Where an async request is (Baseten's statuses). */
export type AsyncRequestStatus = 'QUEUED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'EXPIRED' | 'CANCELED' | 'WEBHOOK_FAILED';

/** Statuses an async request never leaves (WEBHOOK_FAILED included). */
export const FINAL_ASYNC_STATUSES: readonly AsyncRequestStatus[] = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELED', 'WEBHOOK_FAILED'];

/** Where the delivery of an async request's result to its webhook is. */
export type WebhookStatus = 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED' | 'NO_WEBHOOK_PROVIDED';

/** The error codes of an async request (Baseten's AsyncRequestError codes). */
export type AsyncRequestErrorCode =
  | 'MODEL_PREDICT_ERROR'
  | 'MODEL_PREDICT_TIMEOUT'
  | 'MODEL_NOT_READY'
  | 'MODEL_DOES_NOT_EXIST'
  | 'MODEL_UNAVAILABLE'
  | 'MODEL_INVALID_INPUT'
  | 'ASYNC_REQUEST_NOT_SUPPORTED'
  | 'INTERNAL_SERVER_ERROR';

/** One error of an async request. */
export interface AsyncRequestError {
  code: AsyncRequestErrorCode;
  message: string;
}

/** What POST …/async_predict answers (201). */
export interface AsyncPredictAccepted {
  request_id: string;
}

/** What GET …/async_request/{id} answers: Baseten's AsyncRequestStatusResponse plus Gantry's extras. */
export interface AsyncRequestView {
  request_id: string;
  model_id: string;
  deployment_id: string;
  status: AsyncRequestStatus;
  webhook_status: WebhookStatus;
  created_at: string;
  status_at: string;
  errors: AsyncRequestError[];
  /** The model's answer (parsed when it is JSON), while it is retained; absent otherwise. */
  output?: unknown;
  /** Predict attempts made so far. */
  attempts: number;
  priority: number;
  /** The environment the request was addressed to, when it was. */
  environment?: string;
  started_at: string | null;
  ended_at: string | null;
}

/** What DELETE …/async_request/{id} answers. */
export interface AsyncCancelResult {
  request_id: string;
  canceled: boolean;
  message: string;
}

/** What GET …/async_queue_status answers. */
export interface AsyncQueueStatus {
  model_id: string;
  deployment_id: string;
  num_queued_requests: number;
  num_in_progress_requests: number;
}

/** The body POSTed to an async request's webhook. */
export interface AsyncWebhookPayload {
  request_id: string;
  model_id: string;
  deployment_id: string;
  type: 'async_request_completed';
  time: string;
  /** The model's answer: parsed JSON when it is JSON, else its text; null when there is none. */
  data: unknown;
  errors: AsyncRequestError[];
}

/** The header carrying the webhook body's signature: `v1=<hex HMAC-SHA256 of the body>` (Baseten's name and format). */
export const WEBHOOK_SIGNATURE_HEADER = 'x-baseten-signature';
/** The header naming the async request a webhook delivery is for. */
export const WEBHOOK_REQUEST_ID_HEADER = 'x-gantry-request-id';
