/**
 * Promotion activities: the promotion's record and audit trail, the environment's route and
 * current deployment, and what happens to the previous deployment afterwards. Each writes
 * desired state only and is safe to repeat.
 */
import { PromotionService } from '../services/promotions';
import { ServiceError } from '../services/errors';
import type { CleanupStrategy } from '../shared/schemas';
import type { ApiClientSource } from '../shared/views';
import { type DeploymentRecord, type EnvironmentRecord, scalePatch } from '../store/store';
import type { ActivityDeps } from './deps';
import { requireDeployment } from './records';
import type { PromotionStart } from '../contracts/activities';
import type { NewAuditEntry, PromotionPatch, PromotionToRecord } from '../contracts/records';

const NOTHING_STARTED = { previousDeploymentId: null, replicas: 0, previousReplicas: 0, floors: { candidate: 0, previous: 0 } };

/** N, the floors and what the previous deployment runs, from the deployments and the model's environments now. */
function startOf(candidate: DeploymentRecord, previous: DeploymentRecord | undefined, environments: EnvironmentRecord[], environment: string): PromotionStart {
  const replicas = Math.max(1, candidate.autoscaling.min_replica, previous?.desired_replicas ?? 0);
  const servesElsewhere = (id: string): boolean => environments.some((env) => env.name !== environment && env.current_deployment_id === id);
  return {
    previousDeploymentId: previous?.id ?? null,
    replicas,
    previousReplicas: previous?.desired_replicas ?? 0,
    floors: {
      candidate: servesElsewhere(candidate.id) ? candidate.desired_replicas : 0,
      previous: previous && servesElsewhere(previous.id) ? previous.desired_replicas : 0,
    },
  };
}

/** The traffic weights that send `percent` to the candidate and the rest to the previous deployment. */
export function promotionWeights(candidateId: string, previousId: string | null, percent: number): Record<string, number> {
  if (percent >= 100) return { [candidateId]: 100 };
  if (!previousId) return percent <= 0 ? {} : { [candidateId]: 100 };
  if (percent <= 0) return { [previousId]: 100 };
  return { [candidateId]: percent, [previousId]: 100 - percent };
}

/** Creates the promotion activities. */
export function createPromotionActivities(deps: ActivityDeps) {
  return {
    /**
     * Records the promotion and fixes what it starts from: the environment's current deployment,
     * N and the floors. Refuses (recording the promotion ended FAILED, audited
     * `PROMOTION_REFUSED`) when another promotion in flight is of the same environment or
     * controls the candidate or the current deployment, checked in the transaction that records
     * it. A retry returns what was recorded. Promotions started before version 2 (whose row the
     * API created) pass only their id.
     */
    async beginPromotion(input: { promotionId: string; record?: PromotionToRecord }): Promise<PromotionStart> {
      const existing = await deps.store.getPromotion(input.promotionId);
      if (existing?.ended_at) return { ...NOTHING_STARTED, refused: existing.message ?? `promotion ${existing.id} has ended` };
      if (!existing && !input.record) throw new Error(`promotion ${input.promotionId} does not exist`);
      const promotion = existing ?? input.record!;
      const candidate = await requireDeployment(deps, promotion.candidate_deployment_id);
      const environments = await deps.store.listEnvironments(promotion.model_id);
      const environment = environments.find((env) => env.name === promotion.environment);
      const previousId = existing
        ? existing.previous_deployment_id
        : environment?.current_deployment_id && environment.current_deployment_id !== candidate.id
          ? environment.current_deployment_id
          : null;
      const previous = previousId ? await deps.store.getDeployment(previousId) : undefined;
      const start = startOf(candidate, previous, environments, promotion.environment);
      if (existing) {
        if (!input.record) await deps.store.updatePromotion(existing.id, { previous_deployment_id: previousId, previous_replicas: start.previousReplicas });
        return start;
      }
      const row = {
        ...input.record!,
        previous_deployment_id: previousId,
        status: 'RELEASING' as const,
        step: 0,
        total_steps: 0,
        percent_traffic_to_new_version: 0,
        candidate_replicas: 0,
        previous_replicas: start.previousReplicas,
        message: null,
      };
      const created = await deps.store.createPromotionIfClear(row, [candidate.id, ...(previousId ? [previousId] : [])]);
      if ('promotion' in created) return start;
      const { clash } = created;
      const reason =
        clash.environment === promotion.environment
          ? `promotion ${clash.id} of ${clash.environment} has not ended yet`
          : `promotion ${clash.id} of ${clash.environment} already controls the replicas of a deployment this promotion needs`;
      await deps.store.createPromotion({ ...row, status: 'FAILED', message: `refused: ${reason}` });
      await deps.store.endPromotion(
        row.id,
        { status: 'FAILED', message: `refused: ${reason}` },
        {
          model_id: row.model_id,
          actor: row.actor,
          action: 'PROMOTION_REFUSED',
          target: row.environment,
          details: { promotion_id: row.id, candidate_deployment_id: candidate.id, reason },
        },
      );
      return { ...NOTHING_STARTED, refused: reason };
    },

    /** Copies the workflow's progress into the promotion's record. */
    async recordPromotion(input: { promotionId: string; patch: PromotionPatch }): Promise<void> {
      await deps.store.updatePromotion(input.promotionId, input.patch);
    },

    /** Appends audit entries (actions and outcomes), in order. */
    async recordAudit(input: { entries: NewAuditEntry[] }): Promise<void> {
      for (const entry of input.entries) await deps.store.appendAudit(entry);
    },

    /** Routes `percent` of the environment's traffic to the candidate; returns the route's generation. */
    async setTraffic(input: { modelId: string; environment: string; candidateId: string; previousId: string | null; percent: number }): Promise<number> {
      return deps.store.writeRoute(input.modelId, input.environment, promotionWeights(input.candidateId, input.previousId, input.percent));
    },

    /** Makes the candidate the environment's current deployment (all traffic); returns the route's generation. */
    async setCurrentDeployment(input: { modelId: string; environment: string; deploymentId: string }): Promise<number> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      if (deployment.status === 'SCALED_TO_ZERO' || deployment.status === 'WAKING_UP') {
        await deps.store.updateDeployment(deployment.id, { status: 'ACTIVE', status_message: null });
      }
      return deps.store.setCurrentDeployment(input.modelId, input.environment, input.deploymentId);
    },

    /**
     * Starts the promotion a push asked for. A refusal (another promotion in flight, the
     * deployment already current) is reported, not retried: the deployment itself is fine.
     */
    async promoteAfterDeploy(input: {
      deploymentId: string;
      environment: string;
      actor: string;
      actorSource?: ApiClientSource;
    }): Promise<{ promotionId?: string; refused?: string }> {
      if (!deps.workflows) throw new Error('this worker cannot start workflows (no Temporal client in its activity deps)');
      const deployment = await requireDeployment(deps, input.deploymentId);
      const model = await deps.store.getModel(deployment.model_id);
      if (!model) throw new Error(`model ${deployment.model_id} does not exist`);
      const environment = await deps.store.getEnvironment(model.id, input.environment);
      if (environment?.current_deployment_id === deployment.id) return { refused: `already the current deployment of ${input.environment}` };
      const inFlight = await deps.store.listPromotionsInFlight(model.id);
      const mine = inFlight.find((p) => p.candidate_deployment_id === deployment.id && p.environment === input.environment);
      if (mine) return { promotionId: mine.id }; // a retry after the start succeeded
      try {
        const promotion = await new PromotionService({ store: deps.store, workflows: deps.workflows }).promote(model, input.environment, deployment, {
          name: input.actor,
          source: input.actorSource,
        });
        return { promotionId: promotion.id };
      } catch (error) {
        if (error instanceof ServiceError && error.kind !== 'unavailable') {
          // A refusal the promotion recorded itself is already in the audit log.
          if ((error.details as { recorded?: boolean } | undefined)?.recorded) return { refused: error.message };
          await deps.store.appendAudit({
            model_id: model.id,
            actor: input.actor,
            action: 'PROMOTION_REFUSED',
            target: deployment.id,
            details: { environment: input.environment, reason: error.message },
          });
          return { refused: error.message };
        }
        throw error;
      }
    },

    /**
     * After a promotion: the previous deployment scaled to zero, kept as it is, or
     * deactivated; kept anyway while it is another environment's current deployment.
     */
    async cleanUpPrevious(input: { deploymentId: string; strategy: CleanupStrategy }): Promise<{ applied: CleanupStrategy; reason?: string }> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      if (input.strategy === 'KEEP') return { applied: 'KEEP' };
      const serving = (await deps.store.listEnvironments(deployment.model_id)).filter((env) => env.current_deployment_id === deployment.id);
      if (serving.length > 0) return { applied: 'KEEP', reason: `it still serves ${serving.map((env) => env.name).join(', ')}` };
      if (input.strategy === 'DEACTIVATE') {
        await deps.store.updateDeployment(deployment.id, { desired_replicas: 0, status: 'INACTIVE', status_message: 'deactivated by a promotion' });
        return { applied: 'DEACTIVATE' };
      }
      await deps.store.updateDeployment(deployment.id, scalePatch(deployment, 0));
      return { applied: 'SCALE_TO_ZERO' };
    },
  };
}
