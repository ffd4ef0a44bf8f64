/**
 * The store: Gantry's one source of desired and observed state, shared by the API, the
 * worker and the node. SQLite (src/store/sqlite) is the embedded implementation; the
 * interface is asynchronous so that a networked database can stand behind it too.
 */
import { NODE_STALE_AFTER_MS } from '../shared/constants';
import type { AsyncRequestError, AsyncRequestStatus, AuditEntry, AuditSource, DeploymentKind, WebhookStatus } from '../shared/views';
import type { AutoscalingSettings, DeploymentStatus, InferenceRetryConfig, Labels, ModelConfig, PromotionSettings } from '../shared/schemas';
import type { PromotionStatusName } from '../shared/promotion-status';
import type { NewAuditEntry, PromotionPatch } from '../contracts/records';

/** A model: a named thing users call, owning deployments and environments. */
export interface ModelRecord {
  id: string;
  name: string;
  created_at: string;
}

/** One version of a model's code and config. */
export interface DeploymentRecord {
  id: string;
  model_id: string;
  name: string;
  kind: DeploymentKind;
  status: DeploymentStatus;
  /** Why the deployment is in its status, when that needs saying (a failure's cause). */
  status_message: string | null;
  labels: Labels;
  autoscaling: AutoscalingSettings;
  /** Replicas the node should run: the desired state that workflows and the API write. */
  desired_replicas: number;
  /** The parsed config.yaml, once the build has read it. */
  config: ModelConfig | null;
  /** Key of the Python environment the build made or reused. */
  env_key: string | null;
  /** The code revision replicas run: 0 for a published deployment, counting up with each development update. */
  revision: number;
  /** Last heartbeat of a `push --watch` session (development deployments stay awake while it is recent). */
  watch_heartbeat_at: string | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

/** A named, stable traffic target of a model. */
export interface EnvironmentRecord {
  model_id: string;
  name: string;
  current_deployment_id: string | null;
  promotion_settings: PromotionSettings;
  created_at: string;
  updated_at: string;
}

/** An environment's traffic split, versioned by generation so that "applied" can be verified. */
export interface RouteRecord {
  model_id: string;
  environment: string;
  /** Deployment id → weight; weights sum to 100. */
  weights: Record<string, number>;
  generation: number;
  updated_at: string;
}

/** What a node reports of one replica process. */
export type ReplicaState = 'STARTING' | 'READY' | 'UNHEALTHY' | 'DRAINING' | 'EXITED';

/** A replica as its node observes it. */
export interface ObservedReplica {
  id: string;
  deployment_id: string;
  node_id: string;
  state: ReplicaState;
  pid: number | null;
  port: number | null;
  /** How many times this replica slot has been restarted after its process ended. */
  restarts: number;
  /** How the last process ended (`exit 3`, `signal SIGKILL`), when one did. */
  last_exit: string | null;
  /** The error the model server reported (a load failure), when there was one. */
  last_error: string | null;
  /** The code revision the replica runs (development deployments reload new revisions in place). */
  revision: number;
  /** Why the last reload to a newer revision failed (the replica keeps the older code). */
  reload_error: { revision: number; error: string } | null;
  started_at: string;
  ready_at: string | null;
  updated_at: string;
}

/** A promotion's status as the store keeps it (the workflow is the source; this is its record). */
export type PromotionRecordStatus = PromotionStatusName;

/** One promotion of a deployment to an environment: in flight, or history with its outcome. */
export interface PromotionRecord {
  id: string;
  model_id: string;
  environment: string;
  candidate_deployment_id: string;
  previous_deployment_id: string | null;
  status: PromotionRecordStatus;
  step: number;
  total_steps: number;
  percent_traffic_to_new_version: number;
  candidate_replicas: number;
  previous_replicas: number;
  settings: PromotionSettings;
  message: string | null;
  actor: string;
  workflow_id: string;
  started_at: string;
  updated_at: string;
  ended_at: string | null;
}

/** Whether a promotion controls a deployment's replicas (as its candidate or its previous deployment). */
export function promotionInvolves(promotion: PromotionRecord, deploymentId: string): boolean {
  return promotion.candidate_deployment_id === deploymentId || promotion.previous_deployment_id === deploymentId;
}

/** A node's heartbeat: where its gateway listens and which route generations it applies. */
export interface NodeStatus {
  id: string;
  gateway_url: string;
  /** `<model_id>/<environment>` → the route generation the gateway serves. */
  applied_routes: Record<string, number>;
  heartbeat_at: string;
}

/** The statuses of a deployment that serves or is about to (scaling it to zero puts it to sleep). */
const AWAKE: readonly DeploymentStatus[] = ['ACTIVE', 'UNHEALTHY', 'WAKING_UP'];

/**
 * How a deployment's status follows its replica count, in one place for every writer of desired
 * replicas (scaling activities, the autoscaler, promotions' cleanup, wake-ups): the patch that
 * sets `replicas`. To zero puts a serving deployment to sleep; up from zero wakes it.
 */
export function scalePatch(deployment: Pick<DeploymentRecord, 'status'>, replicas: number): DeploymentPatch {
  const status = replicas === 0 && AWAKE.includes(deployment.status) ? 'SCALED_TO_ZERO' : replicas > 0 && deployment.status === 'SCALED_TO_ZERO' ? 'WAKING_UP' : undefined;
  return { desired_replicas: replicas, status, status_message: status ? null : undefined };
}

/** The patch that wakes a sleeping deployment: max(min_replica, 1) replicas, WAKING_UP until one is ready. */
export function wakePatch(deployment: Pick<DeploymentRecord, 'autoscaling'>): DeploymentPatch {
  return { desired_replicas: Math.max(1, deployment.autoscaling.min_replica), status: 'WAKING_UP', status_message: null };
}

/**
 * Wakes a sleeping deployment (no replicas desired, SCALED_TO_ZERO or WAKING_UP):
 * max(min_replica, 1) replicas and WAKING_UP, compare-and-set on the status, so a deactivation
 * since the read wins. Whether it woke it (false when it is awake, deleted or not sleeping).
 */
export async function wakeIfAsleep(store: Pick<Store, 'updateDeploymentIfStatus'>, deployment: DeploymentRecord): Promise<boolean> {
  if (deployment.deleted_at || deployment.desired_replicas > 0) return false;
  return store.updateDeploymentIfStatus(deployment.id, ['SCALED_TO_ZERO', 'WAKING_UP'], wakePatch(deployment));
}

/** The key of a route in a node's applied routes. */
export function routeKey(modelId: string, environment: string): string {
  return `${modelId}/${environment}`;
}

/** The nodes whose heartbeat is recent enough to count as serving. */
export function liveNodes(nodes: NodeStatus[], now = Date.now()): NodeStatus[] {
  return nodes.filter((node) => now - Date.parse(node.heartbeat_at) < NODE_STALE_AFTER_MS);
}

/** Of the live nodes, those whose gateway does not yet serve the route at `generation` or later. */
export function nodesBehind(live: NodeStatus[], key: string, generation: number): NodeStatus[] {
  return live.filter((node) => (node.applied_routes[key] ?? 0) < generation);
}

/** An API key's public part; the secret is kept only as a hash. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  role: 'admin';
  created_at: string;
}

/** Where an entry came from when its writer did not say: read from Gantry's own actors, else an API call. */
export function defaultAuditSource(actor: string): AuditSource {
  if (actor.startsWith('temporal (')) return 'temporal';
  if (actor === 'gantry (repair)') return 'repair';
  if (actor === 'gantry') return 'gantry';
  return 'api';
}

/** Replica-seconds and requests one deployment used during one minute. */
export interface UsageSample {
  deployment_id: string;
  /** The minute, as an ISO timestamp with seconds set to zero. */
  minute: string;
  replica_seconds: number;
  requests: number;
}

/** A secret as listed: its name and stable id, never its value. */
export interface SecretRecord {
  /** Stable across rotation. */
  id: string;
  name: string;
  created_at: string;
  /** When the value was last set (created or rotated). */
  updated_at: string;
}

/** A secret's value as stored: AES-256-GCM ciphertext with its IV and authentication tag. */
export interface SealedSecretValue {
  ciphertext: Buffer;
  iv: Buffer;
  auth_tag: Buffer;
}

/** One stored secret with its encrypted value, for the process that decrypts it (the node). */
export interface SealedSecret extends SealedSecretValue {
  name: string;
}

/** What a push creates. */
export interface NewDeployment {
  model_id: string;
  /** A custom name; when absent the store assigns `deployment-N`. */
  name?: string;
  kind: DeploymentKind;
  labels: Labels;
  autoscaling: AutoscalingSettings;
}

/** The fields of a deployment that may change after it is created. */
export type DeploymentPatch = Partial<
  Pick<
    DeploymentRecord,
    'status' | 'status_message' | 'labels' | 'autoscaling' | 'desired_replicas' | 'config' | 'env_key' | 'name' | 'deleted_at' | 'revision' | 'watch_heartbeat_at'
  >
>;

/** Raised when a write would break a uniqueness rule (a deployment name already taken). */
/** Whether an error is SQLite's own (better-sqlite3 sets `code` to SQLITE_BUSY, SQLITE_IOERR, SQLITE_FULL, …). */
export function isStoreError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_');
}

/** SQLite codes that say the store cannot be used right now (locked past its busy timeout, disk full or failing), not that a call was wrong. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|READONLY|PROTOCOL)(_|$)/;

/** Whether an error says the store is unavailable for now (worth answering 503 and retrying later), as opposed to a bug. */
export function isStoreUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_CODES.test(code);
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** One async prediction request: its target, settings, input, outcome and webhook delivery. */
export interface AsyncRequestRecord {
  id: string;
  model_id: string;
  /** The environment it was addressed to (its queued requests follow a promotion), else null. */
  environment: string | null;
  deployment_id: string;
  status: AsyncRequestStatus;
  webhook_endpoint: string | null;
  webhook_status: WebhookStatus;
  /** 0 (served first) to 2. */
  priority: number;
  max_time_in_queue_seconds: number;
  retry_config: InferenceRetryConfig;
  /** The model_input, as JSON text (kept here, never in a workflow's history). */
  input: string;
  /** The model's answer body while retained, else null. */
  output: string | null;
  output_content_type: string | null;
  errors: AsyncRequestError[];
  attempts: number;
  workflow_id: string;
  created_at: string;
  status_at: string;
  started_at: string | null;
  ended_at: string | null;
  /** When a request still QUEUED expires. */
  expires_at: string;
}

/** What accepting an async request stores (it starts QUEUED). */
export type NewAsyncRequest = Omit<AsyncRequestRecord, 'status' | 'status_at' | 'output' | 'output_content_type' | 'errors' | 'attempts' | 'started_at' | 'ended_at'>;

/** The fields of an async request its transitions change. */
export type AsyncRequestPatch = Partial<
  Pick<AsyncRequestRecord, 'status' | 'webhook_status' | 'output' | 'output_content_type' | 'errors' | 'attempts' | 'started_at' | 'ended_at' | 'deployment_id'>
>;

/** Queued and in-progress async requests of one deployment. */
export interface AsyncQueueCounts {
  deployment_id: string;
  queued: number;
  in_progress: number;
}

/** How many async requests of one deployment are in one status. */
export interface AsyncStatusCount {
  model_id: string;
  deployment_id: string;
  status: AsyncRequestStatus;
  count: number;
}

/** How many promotions of one environment ended in (or are in) one status. */
export interface PromotionStatusCount {
  model_id: string;
  environment: string;
  status: PromotionRecordStatus;
  count: number;
}

/** A group of queued async requests sharing a target: what the dispatcher works through. */
export interface AsyncQueueGroup {
  model_id: string;
  deployment_id: string;
  environment: string | null;
  queued: number;
}

/** Gantry's persistent state. Every method is safe to call from several processes at once. */
export interface Store {
  /** Finds a model by name, or creates it together with its production environment. */
  findOrCreateModel(name: string): Promise<ModelRecord>;
  /** A model by id, or else by name. */
  getModel(idOrName: string): Promise<ModelRecord | undefined>;
  listModels(): Promise<ModelRecord[]>;
  /**
   * The sandbox user of `owner` (a model's id, for its replicas, or `build:<deployment id>:<revision>`
   * for one build's pip and import check): its offset from GANTRY_SANDBOX_UID_BASE (1 or more),
   * allocated on first use and never given to another owner, even after this one is gone.
   */
  sandboxUserOffset(owner: string): Promise<number>;

  /** Creates a deployment, naming it `deployment-N` unless named; a taken name raises ConflictError. */
  createDeployment(input: NewDeployment): Promise<DeploymentRecord>;
  getDeployment(id: string): Promise<DeploymentRecord | undefined>;
  findDeploymentByName(modelId: string, name: string): Promise<DeploymentRecord | undefined>;
  /** A model's deployments, newest first; deleted ones only when asked. */
  listDeployments(modelId: string, options?: { includeDeleted?: boolean }): Promise<DeploymentRecord[]>;
  /** Every deployment that is not deleted, of every model: what a node reconciles. */
  listLiveDeployments(): Promise<DeploymentRecord[]>;
  /** Applies a patch and returns the updated deployment. */
  updateDeployment(id: string, patch: DeploymentPatch): Promise<DeploymentRecord>;
  /**
   * Applies a patch only if the deployment's status is still one of `statuses`, appending `audit`
   * in the same transaction when it does; returns whether it did.
   */
  updateDeploymentIfStatus(id: string, statuses: DeploymentStatus[], patch: DeploymentPatch, audit?: NewAuditEntry): Promise<boolean>;
  /** Sets a deployment's status only if it is still `from`; returns whether it did. */
  setStatusIf(id: string, from: DeploymentStatus, to: DeploymentStatus, message: string | null): Promise<boolean>;
  /** Removes a deployment that never became usable (a push the workflow could not start for). */
  discardDeployment(id: string): Promise<void>;

  getEnvironment(modelId: string, name: string): Promise<EnvironmentRecord | undefined>;
  listEnvironments(modelId: string): Promise<EnvironmentRecord[]>;
  /** Every environment of every model. */
  listAllEnvironments(): Promise<EnvironmentRecord[]>;
  /** Creates a custom environment; a taken name raises ConflictError. */
  createEnvironment(modelId: string, name: string, settings: PromotionSettings): Promise<EnvironmentRecord>;
  updatePromotionSettings(modelId: string, name: string, settings: PromotionSettings): Promise<EnvironmentRecord>;
  /** Removes an environment and its route. */
  deleteEnvironment(modelId: string, name: string): Promise<void>;
  /** Makes a deployment the environment's current one and routes all traffic to it; returns the route generation. */
  setCurrentDeployment(modelId: string, environment: string, deploymentId: string): Promise<number>;
  /** Writes an environment's traffic split with the next generation; returns it. */
  writeRoute(modelId: string, environment: string, weights: Record<string, number>): Promise<number>;
  /**
   * Makes a deployment the environment's current one and routes all its traffic there,
   * but only when the environment has none yet. Returns whether it did.
   */
  adoptIfNoCurrentDeployment(modelId: string, environment: string, deploymentId: string): Promise<boolean>;

  createPromotion(promotion: Omit<PromotionRecord, 'updated_at' | 'ended_at'>): Promise<PromotionRecord>;
  /**
   * Creates a promotion in one transaction with the check that no other promotion in flight is of
   * the same environment or controls one of `deploymentIds`; returns that promotion instead when one is.
   */
  createPromotionIfClear(
    promotion: Omit<PromotionRecord, 'updated_at' | 'ended_at'>,
    deploymentIds: string[],
  ): Promise<{ promotion: PromotionRecord } | { clash: PromotionRecord }>;
  /** Ends a promotion that has not ended yet (with what it left behind), appending `audit` in the same transaction; returns whether it did. */
  endPromotion(id: string, end: Pick<PromotionRecord, 'status' | 'message'> & Omit<PromotionPatch, 'ended_at'>, audit: NewAuditEntry): Promise<boolean>;
  updatePromotion(id: string, patch: PromotionPatch): Promise<PromotionRecord>;
  getPromotion(id: string): Promise<PromotionRecord | undefined>;
  /** An environment's promotions, newest first. */
  listPromotions(modelId: string, environment: string, options?: { limit?: number }): Promise<PromotionRecord[]>;
  /** Promotions not ended yet, of one model or of all. */
  listPromotionsInFlight(modelId?: string): Promise<PromotionRecord[]>;
  /** The most recent promotion of every environment that exists and has had one (in flight or ended). */
  listLatestPromotions(): Promise<PromotionRecord[]>;
  /** Promotions counted by environment and status (one grouped query). */
  countPromotionsByStatus(): Promise<PromotionStatusCount[]>;

  getRoute(modelId: string, environment: string): Promise<RouteRecord | undefined>;
  listRoutes(): Promise<RouteRecord[]>;

  /** Replaces everything a node reports about its replicas with this snapshot. */
  reportReplicas(nodeId: string, replicas: ObservedReplica[]): Promise<void>;
  /** Observed replicas, of one deployment or of all. */
  listReplicas(deploymentId?: string): Promise<ObservedReplica[]>;

  /** Records a node's heartbeat and the route generations its gateway applies. */
  reportNode(status: NodeStatus): Promise<void>;
  listNodes(): Promise<NodeStatus[]>;

  /** Stores a new API key by the hash of its secret. */
  createApiKey(key: { name: string; prefix: string; secretHash: string; role: 'admin' }): Promise<ApiKeyRecord>;
  /** The key whose secret hashes to this, if any. */
  findApiKeyByHash(secretHash: string): Promise<ApiKeyRecord | undefined>;
  countApiKeys(): Promise<number>;
  /** The hashes of every valid key, for the gateway's in-memory check. */
  listApiKeyHashes(): Promise<Map<string, string>>;

  appendAudit(entry: NewAuditEntry): Promise<AuditEntry>;
  /** A model's audit entries, newest first; with `null`, the entries of no model (secrets). */
  listAudit(modelId: string | null, options?: { limit?: number }): Promise<AuditEntry[]>;

  /** Every secret's name, id and dates (never a value), by name. */
  listSecrets(): Promise<SecretRecord[]>;
  /** Creates a secret or replaces its value (keeping its id); says which it did. */
  upsertSecret(name: string, value: SealedSecretValue): Promise<{ secret: SecretRecord; created: boolean }>;
  /** Removes a secret; returns whether there was one. */
  deleteSecret(name: string): Promise<boolean>;
  /** The encrypted values of those of `names` that exist. */
  readSecretCiphertexts(names: string[]): Promise<SealedSecret[]>;

  /** Adds usage samples to what is already recorded for their deployment and minute. */
  addUsage(samples: UsageSample[]): Promise<void>;
  listUsage(range: { start: string; end: string }): Promise<UsageSample[]>;

  /** Stores a new async request, QUEUED. */
  createAsyncRequest(request: NewAsyncRequest): Promise<AsyncRequestRecord>;
  getAsyncRequest(id: string): Promise<AsyncRequestRecord | undefined>;
  /** Removes an async request whose workflow could not be started. */
  discardAsyncRequest(id: string): Promise<void>;
  /**
   * Applies a patch only while the request's status is one of `from` (a patch with a status
   * also sets status_at); returns whether it did.
   */
  transitionAsyncRequest(id: string, from: AsyncRequestStatus[], patch: AsyncRequestPatch): Promise<boolean>;
  /** Queued and in-progress counts of every deployment that has any (one grouped query). */
  countAsyncRequests(): Promise<AsyncQueueCounts[]>;
  /** Async requests counted by deployment and status, every status included (one grouped query). */
  countAsyncRequestsByStatus(): Promise<AsyncStatusCount[]>;
  /** Queued async requests grouped by model, deployment and environment. */
  listAsyncQueueGroups(): Promise<AsyncQueueGroup[]>;
  /** Moves the queued requests of an environment from one deployment to another (a promotion finished); returns how many. */
  repointQueuedAsyncRequests(modelId: string, environment: string, fromDeploymentId: string, toDeploymentId: string): Promise<number>;
  /**
   * In one transaction: marks IN_PROGRESS the best queued requests of a deployment (priority
   * ascending, then oldest) until `slots` are in progress; returns those it marked.
   */
  dispatchAsyncRequests(deploymentId: string, slots: number): Promise<AsyncRequestRecord[]>;
  /** Async requests QUEUED or IN_PROGRESS, oldest first (without their input). */
  listUnfinishedAsyncRequests(): Promise<AsyncRequestRecord[]>;
  /** Clears the output of requests that ended before `endedBefore` (not while their webhook is still to be delivered); returns how many. */
  clearAsyncOutputs(endedBefore: string): Promise<number>;

  /** Calls the listener (coalesced) after any write, by this process or another. Returns an unsubscribe. */
  watch(listener: () => void): () => void;
  close(): Promise<void>;
}
