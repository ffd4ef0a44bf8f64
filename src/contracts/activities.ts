/**
 * The activities the worker registers, as workflows call them through proxyActivities: every
 * activity's input and output. The worker's implementations (src/activities) must match this
 * interface; workflows import it instead of the implementations.
 */
import type { CleanupStrategy, DeploymentStatus, ModelConfig } from '../shared/schemas';
import type { ApiClientSource, AsyncRequestError, AsyncRequestStatus } from '../shared/views';
import type { NewAuditEntry, PromotionPatch, PromotionToRecord } from './records';

/** What a build reports back to the deploy workflow. */
export interface BuildOutcome {
  envKey: string;
  reusedEnvironment: boolean;
  config: ModelConfig;
}

/** Whether a deployment became an environment's current one, and the route generation that made it so. */
export type Adoption = { adopted: false } | { adopted: true; modelId: string; generation: number };

/** What a promotion starts from. */
export interface PromotionStart {
  /** The environment's current deployment, or null when it has none. */
  previousDeploymentId: string | null;
  /** N: what the previous deployment runs now, at least the candidate's min_replica, at least 1. */
  replicas: number;
  /** What the previous deployment runs now (0 when it sleeps: then nothing needs rolling). */
  previousReplicas: number;
  /**
   * Replicas a side may not go below because it is also the current deployment of another
   * environment: the promotion must not take that environment's capacity away.
   */
  floors: { candidate: number; previous: number };
  /** Why the promotion did not start (it is recorded ended FAILED), when it did not. */
  refused?: string;
}

/** An async request's status as an activity read or moved it, or MISSING when its record is gone. */
export type AsyncRequestState = AsyncRequestStatus | 'MISSING';

/** Every activity of Gantry's worker (the comments on the implementations say what each does). */
export interface Activities {
  // Builds (src/activities/build.ts).
  buildDeployment(input: { deploymentId: string; revision?: number }): Promise<BuildOutcome>;

  // Deployment records (src/activities/records.ts).
  setDeploymentStatus(input: { deploymentId: string; status: DeploymentStatus; message?: string }): Promise<void>;
  applyRevision(input: { deploymentId: string; revision: number; envKey: string; config: ModelConfig; desiredReplicas: number }): Promise<void>;
  startRevision(input: { deploymentId: string; revision: number; config: ModelConfig }): Promise<{ woken: boolean }>;
  releaseRevisions(input: { deploymentId: string; serving: number; failed?: number }): Promise<void>;
  adoptIfNoCurrentDeployment(input: { deploymentId: string; environment: string }): Promise<Adoption>;

  // Promotions (src/activities/promotions.ts).
  beginPromotion(input: { promotionId: string; record?: PromotionToRecord }): Promise<PromotionStart>;
  recordPromotion(input: { promotionId: string; patch: PromotionPatch }): Promise<void>;
  recordAudit(input: { entries: NewAuditEntry[] }): Promise<void>;
  setTraffic(input: { modelId: string; environment: string; candidateId: string; previousId: string | null; percent: number }): Promise<number>;
  setCurrentDeployment(input: { modelId: string; environment: string; deploymentId: string }): Promise<number>;
  promoteAfterDeploy(input: { deploymentId: string; environment: string; actor: string; actorSource?: ApiClientSource }): Promise<{ promotionId?: string; refused?: string }>;
  cleanUpPrevious(input: { deploymentId: string; strategy: CleanupStrategy }): Promise<{ applied: CleanupStrategy; reason?: string }>;

  // Scaling and waiting for replicas (src/activities/scaling.ts).
  scaleDeployment(input: { deploymentId: string; replicas: number }): Promise<void>;
  scaleToMinReplicas(input: { deploymentId: string }): Promise<number>;
  awaitReplicasReady(input: { deploymentId: string; replicas: number; deadlineMs: number; revision?: number }): Promise<void>;

  // Routes (src/activities/traffic.ts).
  awaitRouteApplied(input: { modelId: string; environment: string; generation: number; deadlineMs?: number }): Promise<void>;

  // Async predictions (src/activities/async-predictions.ts).
  asyncRequestStatus(input: { requestId: string }): Promise<AsyncRequestState>;
  expireAsyncRequest(input: { requestId: string }): Promise<AsyncRequestState>;
  cancelQueuedAsyncRequest(input: { requestId: string }): Promise<AsyncRequestState>;
  callModel(input: { requestId: string }): Promise<{ status: AsyncRequestStatus }>;
  failAsyncRequest(input: { requestId: string; error: AsyncRequestError }): Promise<void>;
  deliverWebhook(input: { requestId: string }): Promise<void>;
  markWebhookFailed(input: { requestId: string }): Promise<void>;
}
