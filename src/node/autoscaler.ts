/**
 * The autoscaler: moves each serving deployment's desired replicas between min_replica and
 * max_replica on its requests in flight averaged over autoscaling_window, scales down only
 * after demand stayed lower for scale_down_delay (the highest recommendation over that delay
 * wins, as in Kubernetes' HPA), and puts a deployment with min_replica 0 to sleep
 * (SCALED_TO_ZERO) after scale_down_delay without requests. A sleeping deployment is woken by
 * a request (the gateway), never by the autoscaler. A promotion in flight owns the replica
 * counts of its deployments; the autoscaler leaves them alone. Queued async requests (read from
 * the store, once per tick) add to a deployment's demand and count as activity, so a queue keeps
 * it awake and scales it up; in-progress ones are not added, since their calls are already in
 * flight at the gateway.
 */
import type { AutoscalingSettings } from '../shared/schemas';
import { type DeploymentRecord, promotionInvolves, scalePatch, type Store } from '../store/store';

/** One observation of a deployment's demand. */
interface Sample {
  at: number;
  inFlight: number;
}

/** What the autoscaler knows of a deployment at one moment. */
export interface DemandState {
  settings: AutoscalingSettings;
  current: number;
  /** Average requests in flight over the window. */
  averageInFlight: number;
  /** Recommendations (ms, replicas) over the last scale_down_delay, oldest first. */
  recentRecommendations: { at: number; replicas: number }[];
  /** ms since the last request (Infinity when none was ever seen). */
  idleMs: number;
  /** Whether the deployment must stay awake (a development deployment with a watch session). */
  keepAwake: boolean;
  /** How long the autoscaler has watched this deployment (it scales down only after a full delay of watching). */
  observedMs: number;
}

/** The replica count demand asks for now, within the bounds (never zero while awake). */
export function recommendReplicas(settings: AutoscalingSettings, averageInFlight: number): number {
  const wanted = Math.ceil(averageInFlight / settings.concurrency_target - 1e-9);
  return Math.min(settings.max_replica, Math.max(settings.min_replica, 1, wanted));
}

/** The desired replicas after this tick: up at once, down only after the delay, to zero after the delay idle. */
export function nextReplicas(state: DemandState, recommendation: number): number {
  const { settings, current } = state;
  const delayMs = settings.scale_down_delay * 1000;
  if (settings.min_replica === 0 && !state.keepAwake && state.averageInFlight === 0 && state.idleMs >= delayMs) return 0;
  if (recommendation >= current) return recommendation;
  if (state.observedMs < delayMs) return current;
  const highest = Math.max(recommendation, ...state.recentRecommendations.map((r) => r.replicas));
  return Math.min(current, highest);
}

/** Where the autoscaler reads demand from (the gateway). */
export interface DemandSource {
  /** Requests in flight (and queued) for a deployment now. */
  inFlight(deploymentId: string): number;
  /** When the last request for the deployment arrived (epoch ms), if ever. */
  lastRequestAt(deploymentId: string): number | undefined;
}

/** What the autoscaler works with. */
export interface AutoscalerDeps {
  store: Store;
  demand: DemandSource;
  now?: () => number;
  log?: (line: string) => void;
}

/** A watch session counts as activity for this long after its last heartbeat. */
export const WATCH_SESSION_TTL_MS = 30_000;

/** The autoscaler of one node. */
export class Autoscaler {
  private readonly samples = new Map<string, Sample[]>();
  private readonly recommendations = new Map<string, { at: number; replicas: number }[]>();
  private readonly managedSince = new Map<string, number>();
  /** When each deployment last had queued async requests. */
  private readonly lastQueued = new Map<string, number>();
  private readonly startedAt: number;
  private readonly now: () => number;

  constructor(private readonly deps: AutoscalerDeps) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** Records demand (call every second or so) and writes new desired counts where they change. */
  async tick(): Promise<void> {
    const now = this.now();
    const deployments = await this.deps.store.listLiveDeployments();
    const inFlight = await this.deps.store.listPromotionsInFlight();
    const queuedAsync = new Map((await this.deps.store.countAsyncRequests()).map((c) => [c.deployment_id, c.queued]));
    for (const deployment of deployments) {
      if (!this.manages(deployment) || inFlight.some((p) => promotionInvolves(p, deployment.id))) {
        this.samples.delete(deployment.id);
        this.recommendations.delete(deployment.id);
        this.managedSince.delete(deployment.id);
        this.lastQueued.delete(deployment.id);
        continue;
      }
      if (!this.managedSince.has(deployment.id)) this.managedSince.set(deployment.id, now);
      const settings = deployment.autoscaling;
      const windowMs = settings.autoscaling_window * 1000;
      const samples = (this.samples.get(deployment.id) ?? []).filter((s) => now - s.at < windowMs);
      const queued = queuedAsync.get(deployment.id) ?? 0;
      if (queued > 0) this.lastQueued.set(deployment.id, now);
      samples.push({ at: now, inFlight: this.deps.demand.inFlight(deployment.id) + queued });
      this.samples.set(deployment.id, samples);
      const averageInFlight = samples.reduce((sum, s) => sum + s.inFlight, 0) / samples.length;
      const recommendation = recommendReplicas(settings, averageInFlight);
      const recent = (this.recommendations.get(deployment.id) ?? []).filter((r) => now - r.at < settings.scale_down_delay * 1000);
      const lastRequest = this.deps.demand.lastRequestAt(deployment.id) ?? this.startedAt;
      const next = nextReplicas(
        {
          settings,
          current: deployment.desired_replicas,
          averageInFlight,
          recentRecommendations: recent,
          idleMs: now - Math.max(lastRequest, this.lastQueued.get(deployment.id) ?? 0, Date.parse(deployment.updated_at) || 0),
          keepAwake: deployment.watch_heartbeat_at !== null && now - Date.parse(deployment.watch_heartbeat_at) < WATCH_SESSION_TTL_MS,
          observedMs: now - this.managedSince.get(deployment.id)!,
        },
        recommendation,
      );
      recent.push({ at: now, replicas: recommendation });
      this.recommendations.set(deployment.id, recent);
      if (next === deployment.desired_replicas) continue;
      // Only if it is still serving: a deactivation since the read wins.
      const written = await this.deps.store.updateDeploymentIfStatus(deployment.id, ['ACTIVE', 'UNHEALTHY'], scalePatch(deployment, next));
      if (!written) continue;
      this.deps.log?.(
        `autoscaler: deployment ${deployment.id} ${deployment.desired_replicas} → ${next} replicas (${averageInFlight.toFixed(2)} in flight on average${queued > 0 ? `, ${queued} async requests queued` : ''})`,
      );
    }
  }

  /** Whether the autoscaler moves this deployment: serving and awake. */
  private manages(deployment: DeploymentRecord): boolean {
    return (deployment.status === 'ACTIVE' || deployment.status === 'UNHEALTHY') && deployment.desired_replicas > 0;
  }
}
