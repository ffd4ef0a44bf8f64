/**
 * What Gantry's workflows start with, carry over when they continue as new, and end with: the
 * contract between the workflows and whoever starts them (the API through src/temporal, the
 * repair loop, the deploy workflow's promoteAfterDeploy activity).
 */
import type { PromotionControlState } from './promotion-rules';
import type { PromotionStatus } from './messages';
import type { PromotionStart } from './activities';
import type { NewAuditEntry } from './records';
import type { PromotionStatusName } from '../shared/promotion-status';
import type { DeploymentStatus, InferenceRetryConfig, ModelConfig, PromotionSettings } from '../shared/schemas';
import type { ApiClientSource, AsyncRequestStatus, AuditSource } from '../shared/views';

/** What starts a deploy. */
export interface DeployWorkflowInput {
  deploymentId: string;
  /** How long replicas may take to become healthy before the deploy fails. */
  deployTimeoutSeconds: number;
  /** Promote the deployment to this environment once it is ACTIVE. */
  promoteTo?: string;
  /** Who pushed (the API key's name), for the promotion's audit trail. */
  actor?: string;
  /** How the push was made (the API, the CLI, the dashboard), for the audit entry of the promotion it asks for. */
  actorSource?: ApiClientSource;
}

/** How a deploy ended. */
export interface DeployOutcome {
  deployment_id: string;
  status: Extract<DeploymentStatus, 'ACTIVE' | 'BUILD_FAILED' | 'DEPLOY_FAILED'>;
  message?: string;
  /** Whether the deployment became production's current deployment. */
  became_production?: boolean;
  /** The promotion the push asked for: its id, or why it was refused. */
  promotion?: { promotion_id?: string; refused?: string };
}

/** What an update starts from. */
export interface DevelopmentUpdateInput {
  deploymentId: string;
  /** The revision to send (its archive is the deployment's latest upload). */
  revision: number;
  /** The revision serving now (and how many replicas it ran), put back if the new one fails. */
  previous: { revision: number; envKey: string; config: ModelConfig; desiredReplicas: number };
  deployTimeoutSeconds: number;
  /**
   * `reload`: the new revision's code, already unpacked, runs in the same Python environment and
   * is live-reloaded; absent (as for updates started before reloads were workflows): a rebuild.
   */
  mode?: 'reload';
  /** The new revision's config (a reload; a rebuild reads it from the build). */
  config?: ModelConfig;
}

/** How an update ended. */
export interface DevelopmentUpdateOutcome {
  deployment_id: string;
  revision: number;
  status: 'UPDATED' | 'FAILED';
  message?: string;
  /** A reload that found the deployment asleep and started its replica on the new code. */
  woken?: boolean;
}

/** What an async request's workflow starts with. */
export interface AsyncPredictionInput {
  requestId: string;
  maxTimeInQueueSeconds: number;
  /**
   * When the request expires (epoch ms: accepted + max_time_in_queue_seconds, as recorded), so
   * a workflow that starts late (the worker was down) or continues as new keeps the deadline.
   * Absent in workflows started before it existed: then measured from the workflow's start.
   */
  expiresAtMs?: number;
  retry: InferenceRetryConfig;
  /** The longest one call may take (the deployment's predict timeout, plus the wait for a replica). */
  callTimeoutSeconds: number;
  /** Whether the request has a webhook to deliver to. */
  webhook: boolean;
  /** How long webhook delivery is retried (GANTRY_WEBHOOK_RETRY_SECONDS as the API read it). */
  webhookRetrySeconds: number;
}

/** How the request ended, as far as the workflow saw it. */
export interface AsyncPredictionOutcome {
  request_id: string;
  status: AsyncRequestStatus | 'MISSING';
}

/** What starts a promotion. */
export interface PromotionWorkflowInput {
  promotionId: string;
  modelId: string;
  environment: string;
  candidateDeploymentId: string;
  /** The environment's settings when the promotion was asked for. */
  settings: PromotionSettings;
  /** The API key name (or `gantry`) that asked. */
  actor: string;
  /** How the promotion was asked for (the API, the CLI, the dashboard), for the audit log. Absent: from the actor. */
  actorSource?: AuditSource;
  /** When the promotion was asked for (the record's `started_at`). */
  startedAt?: string;
  /** The state a run that continued as new carries over. */
  continued?: PromotionContinuation;
}

/** What a promotion carries into the run it continues as. */
export interface PromotionContinuation {
  status: PromotionStatus;
  control: PromotionControlState;
  phase: 'RAMPING_UP' | 'RAMPING_DOWN';
  start: PromotionStart;
  /** Whether the last route write was verified applied. */
  routeApplied: boolean;
  /** When the stabilization wait after the last step ends (epoch ms). */
  stabilizedAt: number;
  /** Audit entries not written yet. */
  unaudited: NewAuditEntry[];
}

/** How a promotion ended. */
export interface PromotionOutcome {
  promotion_id: string;
  status: Extract<PromotionStatusName, 'SUCCEEDED' | 'FAILED' | 'CANCELED'>;
  message: string | null;
}
