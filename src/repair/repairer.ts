/**
 * The repair loop (run by the worker): wherever the store says work is under way — a deployment
 * BUILDING, DEPLOYING or UPDATING, a promotion without an end — it asks Temporal whether the
 * workflow doing that work is running, and when it is not, it repairs the record: a deploy that
 * never started is started again; one whose workflow was terminated fails with the cause; an
 * interrupted development update puts the previous revision back; a promotion whose workflow
 * closed without recording its end is ended FAILED (CANCELED for a cancellation), with all
 * traffic on the previous deployment unless the candidate already served all of it. Every repair
 * is audited `REPAIRED` with its cause. Level-triggered and idempotent: a pass can run at any
 * moment, any number of times, and a repair cut short is finished by the next pass.
 */
import type { HomePaths } from '../home';
import { appendLog } from '../logs/deployment-logs';
import { workflowIds } from '../shared/constants';
import {
  type AsyncRequestRecord,
  type DeploymentPatch,
  type DeploymentRecord,
  liveNodes,
  nodesBehind,
  type PromotionRecord,
  routeKey,
  scalePatch,
  type Store,
} from '../store/store';
import type { WorkflowDescription, WorkflowsClient } from '../temporal/workflows-client';
import type { DevelopmentUpdateInput } from '../contracts/workflows';
import type { PromotionPatch } from '../contracts/records';
import { lineLogger, processLogger } from '../logging/logger';

/** The actor of every repair in the audit log. */
export const REPAIR_ACTOR = 'gantry (repair)';

/** How long a repair waits for the gateways to apply the route it wrote before it ends the promotion. */
const ROUTE_APPLY_WAIT_MS = 10_000;

/** How often the workflow of one unfinished async request is looked at (there may be thousands). */
const ASYNC_CHECK_MS = 30_000;

/** A record younger than this is left alone when its workflow is missing: the API may be starting it right now. */
export const DEFAULT_REPAIR_GRACE_MS = 10_000;

/** What the repair loop works with. */
export interface RepairerDeps {
  store: Store;
  workflows: WorkflowsClient;
  paths: HomePaths;
  /** The deploy timeout a restarted deploy workflow gets (GANTRY_DEPLOY_TIMEOUT_SECONDS). */
  deployTimeoutSeconds: number;
  graceMs?: number;
  log?: (line: string) => void;
}

/** Where a repair left a promotion's traffic and replicas, and what it did, in words. */
type RestoredTraffic = { action: string } & Pick<PromotionPatch, 'percent_traffic_to_new_version' | 'candidate_replicas' | 'previous_replicas'>;

/** One repair a pass made. */
export interface Repair {
  kind: 'deploy' | 'development-update' | 'promotion' | 'async-request';
  id: string;
  cause: string;
  action: string;
}

/** How a closed workflow ended, in words for a status message. */
function ended(workflow: WorkflowDescription | undefined, reason?: string): string {
  if (!workflow) return 'its workflow was never started';
  const how =
    { TERMINATED: 'terminated', CANCELLED: 'cancelled', FAILED: 'failed', TIMED_OUT: 'timed out', COMPLETED: 'completed' }[workflow.status as string] ??
    workflow.status.toLowerCase();
  return `its workflow was ${how}${reason ? ` (${reason})` : ''}`;
}

/** Repairs records whose workflows are not running; see the module comment. */
export class Repairer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<Repair[]> | undefined;
  private lastError = '';
  /** When each unfinished async request's workflow was last looked at (each at most every ASYNC_CHECK_MS). */
  private readonly asyncChecked = new Map<string, number>();

  constructor(private readonly deps: RepairerDeps) {}

  private log(line: string): void {
    (this.deps.log ?? lineLogger(processLogger()))(`repair: ${line}`);
  }

  /** Runs a pass now and then every `intervalMs` until stopped. */
  start(intervalMs: number): void {
    const tick = (): void => {
      void this.pass().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops the loop and waits for a pass under way. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass over every record that says work is under way; resolves with the repairs it made. Never rejects. */
  pass(): Promise<Repair[]> {
    this.running ??= this.passOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async passOnce(): Promise<Repair[]> {
    const repairs: Repair[] = [];
    try {
      const deployments = await this.deps.store.listLiveDeployments();
      for (const deployment of deployments) {
        if (deployment.status === 'BUILDING' || deployment.status === 'DEPLOYING') await this.add(repairs, this.repairDeploy(deployment));
        else if (deployment.status === 'UPDATING') await this.add(repairs, this.repairDevelopmentUpdate(deployment));
      }
      for (const promotion of await this.deps.store.listPromotionsInFlight()) await this.add(repairs, this.repairPromotion(promotion));
      const unfinished = await this.deps.store.listUnfinishedAsyncRequests();
      const ids = new Set(unfinished.map((r) => r.id));
      for (const id of this.asyncChecked.keys()) if (!ids.has(id)) this.asyncChecked.delete(id);
      for (const request of unfinished) await this.add(repairs, this.repairAsyncRequest(request));
      this.lastError = '';
    } catch (error) {
      // Temporal or the store is unreachable: nothing can be known, so nothing is repaired.
      const message = (error as Error).message;
      if (message !== this.lastError) this.log(`pass stopped: ${message}`);
      this.lastError = message;
    }
    return repairs;
  }

  /** An async request QUEUED or IN_PROGRESS: its workflow runs, or it is ended FAILED. */
  private async repairAsyncRequest(request: AsyncRequestRecord): Promise<Repair | undefined> {
    const now = Date.now();
    if (this.recent(request.status_at) || now - (this.asyncChecked.get(request.id) ?? 0) < ASYNC_CHECK_MS) return undefined;
    this.asyncChecked.set(request.id, now);
    const workflow = await this.deps.workflows.describe(request.workflow_id);
    if (workflow?.status === 'RUNNING') return undefined;
    const cause = ended(workflow);
    const action = 'ended FAILED';
    const repaired = await this.deps.store.transitionAsyncRequest(request.id, ['QUEUED', 'IN_PROGRESS'], {
      status: 'FAILED',
      errors: [{ code: 'INTERNAL_SERVER_ERROR', message: 'repaired: the workflow ended without finishing the request' }],
      // No workflow is left to deliver it: the webhook is not called, and the record says so.
      webhook_status: request.webhook_endpoint ? 'FAILED' : 'NO_WEBHOOK_PROVIDED',
      ended_at: new Date().toISOString(),
    });
    if (!repaired) return undefined;
    await this.deps.store.appendAudit({
      model_id: request.model_id,
      actor: REPAIR_ACTOR,
      action: 'REPAIRED',
      target: request.id,
      details: { request_id: request.id, deployment_id: request.deployment_id, workflow_id: request.workflow_id, cause, action },
    });
    return { kind: 'async-request', id: request.id, cause, action };
  }

  private async add(repairs: Repair[], repair: Promise<Repair | undefined>): Promise<void> {
    const done = await repair;
    if (!done) return;
    repairs.push(done);
    this.log(`${done.kind} ${done.id}: ${done.cause}; ${done.action}`);
  }

  private recent(updatedAt: string): boolean {
    return Date.now() - Date.parse(updatedAt) < (this.deps.graceMs ?? DEFAULT_REPAIR_GRACE_MS);
  }

  /** A deployment BUILDING or DEPLOYING: its deploy workflow runs, or is started again, or the deployment fails. */
  private async repairDeploy(deployment: DeploymentRecord): Promise<Repair | undefined> {
    const workflowId = workflowIds.deploy(deployment.id);
    const workflow = await this.deps.workflows.describe(workflowId);
    if (workflow?.status === 'RUNNING' || this.recent(deployment.updated_at)) return undefined;
    const { store } = this.deps;
    if (!workflow || workflow.status === 'COMPLETED') {
      // Never started (the API stopped, or Temporal was unreachable, between the record and the
      // start), or an earlier run that completed before this push reset the record: start it.
      const model = await store.getModel(deployment.model_id);
      if (!model) return undefined;
      await this.deps.workflows.startDeploy(model, deployment, { deployTimeoutSeconds: this.deps.deployTimeoutSeconds, actor: REPAIR_ACTOR });
      const cause = workflow ? `it was ${deployment.status} but its last deploy workflow had completed` : 'it was never started';
      const action = 'started its deploy workflow again';
      await store.appendAudit({
        model_id: deployment.model_id,
        actor: REPAIR_ACTOR,
        action: 'REPAIRED',
        target: deployment.id,
        details: { deployment_id: deployment.id, workflow_id: workflowId, cause, action },
      });
      return { kind: 'deploy', id: deployment.id, cause, action };
    }
    const reason = workflow.status === 'TERMINATED' ? (await this.deps.workflows.startInputOf(workflowId))?.terminationReason : undefined;
    const cause = ended(workflow, reason);
    const failed = deployment.status === 'BUILDING' ? 'BUILD_FAILED' : 'DEPLOY_FAILED';
    const action = `marked ${failed} and scaled to zero`;
    const repaired = await store.updateDeploymentIfStatus(
      deployment.id,
      [deployment.status],
      { status: failed, status_message: `the deploy did not finish: ${cause}`, desired_replicas: 0 },
      {
        model_id: deployment.model_id,
        actor: REPAIR_ACTOR,
        action: 'REPAIRED',
        target: deployment.id,
        details: { deployment_id: deployment.id, workflow_id: workflowId, cause, action },
      },
    );
    if (!repaired) return undefined;
    appendLog(this.deps.paths.logs, deployment.id, 'gantry', [`status ${failed}: the deploy did not finish: ${cause} (repaired)`]);
    return { kind: 'deploy', id: deployment.id, cause, action };
  }

  /** A development deployment UPDATING: its update runs, or the previous revision is put back. */
  private async repairDevelopmentUpdate(deployment: DeploymentRecord): Promise<Repair | undefined> {
    const workflowId = workflowIds.developmentUpdate(deployment.id);
    const workflow = await this.deps.workflows.describe(workflowId);
    if (workflow?.status === 'RUNNING' || this.recent(deployment.updated_at)) return undefined;
    // Rebuilds started before updates were one at a time per deployment had the revision in their id.
    for (const legacy of [deployment.revision + 1, deployment.revision]) {
      if ((await this.deps.workflows.describe(workflowIds.legacyDevelopmentUpdate(deployment.id, legacy)))?.status === 'RUNNING') return undefined;
    }
    const started = workflow ? await this.deps.workflows.startInputOf(workflowId) : undefined;
    const cause = ended(workflow, started?.terminationReason);
    const input = started?.input as DevelopmentUpdateInput | undefined;
    const previous = input?.previous;
    const asleep = (previous?.desiredReplicas ?? deployment.desired_replicas) === 0;
    const patch: DeploymentPatch = previous
      ? {
          revision: previous.revision,
          env_key: previous.envKey,
          config: previous.config,
          desired_replicas: previous.desiredReplicas,
          status: asleep ? 'SCALED_TO_ZERO' : 'ACTIVE',
          status_message: `the update to revision ${input!.revision} did not finish (${cause}); revision ${previous.revision} ${asleep ? 'stays (asleep)' : 'serves'}`,
        }
      : { status: asleep ? 'SCALED_TO_ZERO' : 'ACTIVE', status_message: `an update did not finish (${cause})` };
    const action = previous ? `put revision ${previous.revision} back` : 'left the current revision in place';
    const repaired = await this.deps.store.updateDeploymentIfStatus(deployment.id, ['UPDATING'], patch, {
      model_id: deployment.model_id,
      actor: REPAIR_ACTOR,
      action: 'REPAIRED',
      target: deployment.id,
      details: { deployment_id: deployment.id, workflow_id: workflowId, cause, action },
    });
    if (!repaired) return undefined;
    appendLog(this.deps.paths.logs, deployment.id, 'gantry', [`status ${patch.status}: ${patch.status_message} (repaired)`]);
    return { kind: 'development-update', id: deployment.id, cause, action };
  }

  /** A promotion without an end: its workflow runs it, or the promotion is ended with traffic where it safely belongs. */
  private async repairPromotion(promotion: PromotionRecord): Promise<Repair | undefined> {
    const workflow = await this.deps.workflows.describe(promotion.workflow_id);
    // Promotions started before version 2 carry no memo; at most one of those runs per environment.
    const runsThis = workflow !== undefined && (workflow.memo.promotion_id === undefined || workflow.memo.promotion_id === promotion.id);
    if (workflow?.status === 'RUNNING') {
      if (runsThis) return undefined;
      // A newer promotion of the environment runs: this one must not touch its traffic.
      return this.endPromotion(promotion, 'FAILED', 'its workflow ended without recording it, and a newer promotion of the environment runs', {
        action: 'left the traffic to the newer promotion',
      });
    }
    if (!runsThis && this.recent(promotion.updated_at)) return undefined;
    const reason = runsThis && workflow.status === 'TERMINATED' ? (await this.deps.workflows.startInputOf(promotion.workflow_id))?.terminationReason : undefined;
    const cause = ended(runsThis ? workflow : undefined, reason);
    const traffic = await this.restoreTraffic(promotion);
    return this.endPromotion(promotion, runsThis && workflow.status === 'CANCELLED' ? 'CANCELED' : 'FAILED', cause, traffic);
  }

  /**
   * Puts the environment's traffic where it belongs after a promotion that ended without saying
   * so: on the candidate if it already had all of it (it becomes the current deployment), else
   * on the previous deployment, with its replicas restored and the candidate scaled to zero
   * unless another environment still needs it. Returns what it did, in words.
   */
  private async restoreTraffic(promotion: PromotionRecord): Promise<RestoredTraffic> {
    const { store } = this.deps;
    const environment = await store.getEnvironment(promotion.model_id, promotion.environment);
    if (!environment) return { action: 'the environment no longer exists' };
    const candidateId = promotion.candidate_deployment_id;
    const route = await store.getRoute(promotion.model_id, promotion.environment);
    const weights = route?.weights ?? {};
    const candidateServesAll = environment.current_deployment_id === candidateId || (weights[candidateId] === 100 && Object.keys(weights).length === 1);
    if (candidateServesAll) {
      if (environment.current_deployment_id !== candidateId)
        await this.awaitRouteApplied(promotion, await store.setCurrentDeployment(promotion.model_id, promotion.environment, candidateId));
      return { action: 'the candidate already served all traffic and stays the current deployment', percent_traffic_to_new_version: 100 };
    }
    const previousId = environment.current_deployment_id;
    const previous = previousId ? await store.getDeployment(previousId) : undefined;
    let previousReplicas: number | undefined;
    if (previous && !previous.deleted_at) {
      const wanted = Math.max(1, previous.autoscaling.min_replica, previous.desired_replicas);
      previousReplicas = wanted;
      if (previous.desired_replicas < wanted) await store.updateDeployment(previous.id, scalePatch(previous, wanted));
      if (!(weights[previous.id] === 100 && Object.keys(weights).length === 1)) {
        await this.awaitRouteApplied(promotion, await store.writeRoute(promotion.model_id, promotion.environment, { [previous.id]: 100 }));
      }
    } else if (weights[candidateId]) {
      await this.awaitRouteApplied(promotion, await store.writeRoute(promotion.model_id, promotion.environment, {}));
    }
    const candidate = await store.getDeployment(candidateId);
    const servesElsewhere = (await store.listEnvironments(promotion.model_id)).some((env) => env.current_deployment_id === candidateId);
    if (candidate && !candidate.deleted_at && !servesElsewhere && candidate.desired_replicas > 0) await store.updateDeployment(candidateId, scalePatch(candidate, 0));
    return {
      action: previous
        ? `all traffic is back on deployment ${previous.name}, the candidate scaled to zero`
        : 'the environment has no previous deployment to send traffic to; the candidate scaled to zero',
      percent_traffic_to_new_version: 0,
      candidate_replicas: servesElsewhere ? candidate?.desired_replicas : 0,
      previous_replicas: previousReplicas,
    };
  }

  /**
   * Waits until every live gateway serves the route at `generation` (set, then verify), so that
   * a promotion ended by a repair has its traffic where its record says; at most
   * ROUTE_APPLY_WAIT_MS (with no live node there is nobody to wait for).
   */
  private async awaitRouteApplied(promotion: PromotionRecord, generation: number): Promise<void> {
    const key = routeKey(promotion.model_id, promotion.environment);
    const deadline = Date.now() + ROUTE_APPLY_WAIT_MS;
    while (Date.now() < deadline) {
      if (nodesBehind(liveNodes(await this.deps.store.listNodes()), key, generation).length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async endPromotion(promotion: PromotionRecord, outcome: 'FAILED' | 'CANCELED', cause: string, traffic: RestoredTraffic): Promise<Repair | undefined> {
    const { action, ...left } = traffic;
    const repaired = await this.deps.store.endPromotion(
      promotion.id,
      { status: outcome, message: `${cause}; repaired: ${action}`, ...left },
      {
        model_id: promotion.model_id,
        actor: REPAIR_ACTOR,
        action: 'REPAIRED',
        target: promotion.environment,
        details: { promotion_id: promotion.id, workflow_id: promotion.workflow_id, outcome, cause, action },
      },
    );
    return repaired ? { kind: 'promotion', id: promotion.id, cause, action: `ended ${outcome}: ${action}` } : undefined;
  }
}
