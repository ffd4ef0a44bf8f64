/**
 * promotionWorkflow as it ran before the workflow recorded its own promotion and took actions as
 * Updates (Gantry at 4e6f157), kept unchanged so that the promotions it started, which may stay
 * paused for days, replay and finish after an upgrade. `promotionWorkflow` runs this code only
 * for histories without the `promotion-v2` patch marker; new promotions never reach it. The
 * replay suite's `v1` histories prove it still matches them. Remove it (with `deprecatePatch`)
 * once no promotion started before the upgrade is running anywhere.
 *
 * Do not edit the command sequence below; the shared rule table and rollout plan it uses must
 * keep their answers for the states it can be in.
 */
import { CancellationScope, condition, isCancellation, setHandler, upsertMemo } from '@temporalio/workflow';
import { REPLICAS_NOT_READY } from '../../contracts/failures';
import { failureOfType, promotionSteps as quick, promotionWaits as waits } from '../activity-proxies';
import {
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  promotionStatusQuery,
  resumePromotionSignal,
  SIGNAL_ACTOR,
  type ActionRequest,
  type PromotionStatus,
} from '../../contracts/messages';
import { acceptAction, actionRefusal, type PromotionControlState } from '../../contracts/promotion-rules';
import { CANARY_STAGES, planCanary, planRollout, stepBack, type RolloutAction, type RolloutPlan } from '../rollout-plan';
import type { PromotionActionRecord, PromotionStatusName, PromotionActionName } from '../../shared/promotion-status';
import type { NewAuditEntry, PromotionPatch } from '../../contracts/records';
import type { PromotionOutcome, PromotionWorkflowInput } from '../../contracts/workflows';

/** The candidate did not become ready (in time, or at all): the promotion fails and rolls back. */
class RolloutFailed extends Error {}
/** A force action arrived while a scaling step was waiting: the step stops where it is. */
class Interrupted extends Error {}

const iso = (): string => new Date().toISOString();

/** The promotion workflow of Gantry 4e6f157 (see the module comment). */
export async function promotionWorkflowV1(input: PromotionWorkflowInput): Promise<PromotionOutcome> {
  // ---- state ----
  const startedAt = iso();
  const status: PromotionStatus = {
    promotion_id: input.promotionId,
    model_id: input.modelId,
    environment: input.environment,
    status: 'RELEASING',
    step: 0,
    total_steps: 0,
    percent_traffic_to_new_version: 0,
    candidate: { deployment_id: input.candidateDeploymentId, replicas: 0 },
    previous: { deployment_id: null, replicas: 0 },
    pending_action: null,
    paused_from: null,
    message: null,
    started_at: startedAt,
    updated_at: startedAt,
    actions: [{ action: 'PROMOTE', actor: input.actor, at: startedAt, outcome: 'applied', status: 'RELEASING' }],
  };
  let control: PromotionControlState = { status: 'RELEASING', pending: null, pausedFrom: null };
  const unaudited: NewAuditEntry[] = [];
  let plan: RolloutPlan | undefined;
  let floors = { candidate: 0, previous: 0 };

  const audit = (action: string, actor: string, details: Record<string, unknown>): void => {
    unaudited.push({ model_id: input.modelId, actor, action, target: input.environment, details: { promotion_id: input.promotionId, ...details }, at: iso() });
  };
  audit('PROMOTE', input.actor, { candidate_deployment_id: input.candidateDeploymentId, settings: input.settings });

  // ---- handlers ----
  const receive = (action: PromotionActionName, request: ActionRequest | undefined): void => {
    const actor = request?.actor ?? SIGNAL_ACTOR;
    const refusal = actionRefusal(control, action);
    const record: PromotionActionRecord = { action, actor, at: iso(), outcome: refusal ? 'ignored' : 'applied', status: control.status };
    status.actions.push(record);
    audit(action, actor, { outcome: record.outcome, status: control.status, ...(refusal ? { reason: refusal } : {}) });
    if (refusal) return;
    control = acceptAction(control, action);
    status.pending_action = control.pending === 'RESUME' ? null : control.pending;
  };
  setHandler(pausePromotionSignal, (request) => receive('PAUSE', request));
  setHandler(resumePromotionSignal, (request) => receive('RESUME', request));
  setHandler(cancelPromotionSignal, (request) => receive('GRACEFUL_CANCEL', request));
  setHandler(forceCancelPromotionSignal, (request) => receive('FORCE_CANCEL', request));
  setHandler(forceRollForwardPromotionSignal, (request) => receive('FORCE_ROLL_FORWARD', request));
  setHandler(promotionStatusQuery, () => status);

  // Audit entries are written in the background, in order, so a long step never delays them.
  let auditing = true;
  const auditor = (async () => {
    while (auditing || unaudited.length > 0) {
      await condition(() => unaudited.length > 0 || !auditing);
      const batch = unaudited.splice(0);
      if (batch.length > 0) await quick.recordAudit({ entries: batch });
    }
  })();

  // ---- helpers ----
  const record = async (patch: PromotionPatch = {}): Promise<void> => {
    status.updated_at = iso();
    await quick.recordPromotion({
      promotionId: input.promotionId,
      patch: {
        status: status.status,
        step: status.step,
        total_steps: status.total_steps,
        percent_traffic_to_new_version: status.percent_traffic_to_new_version,
        candidate_replicas: status.candidate.replicas,
        previous_replicas: status.previous.replicas,
        message: status.message,
        ...patch,
      },
    });
  };

  const enter = async (next: PromotionStatusName): Promise<void> => {
    status.status = next;
    control = { ...control, status: next };
    status.paused_from = next === 'PAUSED' ? control.pausedFrom : null;
    upsertMemo({ status: next });
    await record();
  };

  const forcePending = (): boolean => control.pending === 'FORCE_CANCEL' || control.pending === 'FORCE_ROLL_FORWARD';

  /** Waits for replicas to be ready; a force action interrupts the wait, a failure fails the rollout. */
  const awaitReady = async (deploymentId: string, replicas: number, interruptible: boolean): Promise<void> => {
    const deadlineMs = Date.now() + input.settings.promotion_timeout_seconds * 1000;
    const scope = new CancellationScope();
    let settled = false;
    if (interruptible) {
      void condition(() => settled || forcePending()).then(() => {
        if (!settled) scope.cancel();
      });
    }
    try {
      await scope.run(() => waits.awaitReplicasReady({ deploymentId, replicas, deadlineMs }));
    } catch (error) {
      if (isCancellation(error) && forcePending()) throw new Interrupted();
      const notReady = failureOfType(error, REPLICAS_NOT_READY);
      if (notReady) throw new RolloutFailed(notReady.message);
      throw error;
    } finally {
      settled = true;
    }
  };

  const scale = async (side: 'candidate' | 'previous', planned: number, options: { interruptible: boolean }): Promise<void> => {
    const deploymentId = side === 'candidate' ? input.candidateDeploymentId : status.previous.deployment_id;
    if (!deploymentId) return;
    const replicas = Math.max(planned, floors[side]); // never below what another environment needs
    const before = status[side].replicas;
    status[side].replicas = replicas;
    await quick.scaleDeployment({ deploymentId, replicas });
    await record();
    if (replicas > before) await awaitReady(deploymentId, replicas, options.interruptible);
  };

  const route = async (percent: number): Promise<void> => {
    const generation = await quick.setTraffic({
      modelId: input.modelId,
      environment: input.environment,
      candidateId: input.candidateDeploymentId,
      previousId: status.previous.deployment_id,
      percent,
    });
    await waits.awaitRouteApplied({ modelId: input.modelId, environment: input.environment, generation });
    status.percent_traffic_to_new_version = percent;
    await record();
  };

  const keepPrevious = input.settings.promotion_cleanup_strategy === 'KEEP';
  const run = async (actions: RolloutAction[], interruptible: boolean): Promise<void> => {
    for (const action of actions) {
      if (action.kind === 'route') await route(action.percent);
      else if (action.side === 'previous' && keepPrevious && action.replicas < status.previous.replicas) continue;
      else await scale(action.side, action.replicas, { interruptible });
    }
  };

  const finish = async (outcome: PromotionOutcome['status'], message: string | null = null): Promise<PromotionOutcome> => {
    status.pending_action = null;
    status.message = message;
    status.status = outcome;
    control = { ...control, status: outcome, pending: null };
    upsertMemo({ status: outcome });
    // The audit trail is complete before the record says the promotion ended, so whoever sees
    // the end (an API action, `--follow`) also finds every entry.
    audit(`PROMOTION_${outcome}`, 'gantry', { message, percent_traffic_to_new_version: status.percent_traffic_to_new_version });
    auditing = false;
    await auditor;
    await record({ ended_at: iso() });
    return { promotion_id: input.promotionId, status: outcome, message };
  };

  /** Candidate to N and all traffic, then the environment points at it and the previous is cleaned up. */
  const complete = async (): Promise<PromotionOutcome> => {
    const n = plan!.replicas;
    // The candidate must be ready at N before it takes all traffic, also when a force action
    // interrupted the wait of a step that had already asked for N.
    if (status.candidate.replicas < n) await scale('candidate', n, { interruptible: false });
    else await awaitReady(input.candidateDeploymentId, status.candidate.replicas, false);
    if (status.percent_traffic_to_new_version < 100) await route(100);
    const generation = await quick.setCurrentDeployment({ modelId: input.modelId, environment: input.environment, deploymentId: input.candidateDeploymentId });
    await waits.awaitRouteApplied({ modelId: input.modelId, environment: input.environment, generation });
    if (status.previous.deployment_id) {
      const cleanup = await quick.cleanUpPrevious({ deploymentId: status.previous.deployment_id, strategy: input.settings.promotion_cleanup_strategy });
      if (cleanup.applied !== 'KEEP') status.previous.replicas = 0;
      if (cleanup.reason) audit('CLEANUP_SKIPPED', 'gantry', { deployment_id: status.previous.deployment_id, reason: cleanup.reason });
    }
    status.step = status.total_steps;
    return finish('SUCCEEDED');
  };

  /**
   * All traffic back on the previous deployment at once (it gets a replica first if it has
   * none), then the previous back to N and the candidate to zero.
   */
  const rollBack = async (): Promise<void> => {
    if (status.previous.deployment_id && status.previous.replicas < 1) await scale('previous', 1, { interruptible: false });
    if (status.percent_traffic_to_new_version > 0) await route(0);
    if (status.previous.deployment_id) await scale('previous', plan?.replicas ?? 1, { interruptible: false });
    await scale('candidate', 0, { interruptible: false });
    status.step = 0;
  };

  const fail = async (error: RolloutFailed): Promise<PromotionOutcome> => {
    status.message = error.message;
    await rollBack();
    return finish('FAILED', `${error.message}; all traffic is back on the previous deployment`);
  };

  /** Ends the rollout after an interruption or failure thrown out of a step. */
  const recover = async (error: unknown): Promise<PromotionOutcome> => {
    if (error instanceof Interrupted) {
      // A force action stopped a scaling wait: act on it from where the rollout stands.
      if (control.pending === 'FORCE_ROLL_FORWARD') {
        try {
          return await complete();
        } catch (failure) {
          if (failure instanceof RolloutFailed) return fail(failure);
          throw failure;
        }
      }
      await rollBack();
      return finish('CANCELED', 'force-cancelled: all traffic on the previous deployment');
    }
    if (error instanceof RolloutFailed) return fail(error);
    throw error;
  };

  // ---- main loop ----
  await record();
  const start = await quick.beginPromotion({ promotionId: input.promotionId });
  floors = start.floors;
  status.previous = { deployment_id: start.previousDeploymentId, replicas: start.previousReplicas };
  // A previous deployment that sleeps serves nothing: there is no traffic to move step by step.
  const hasTraffic = start.previousDeploymentId !== null && start.previousReplicas > 0;
  const canary = input.settings.ramp_up_while_promoting && hasTraffic;
  const rolling = !canary && input.settings.rolling_deploy && hasTraffic;
  plan = canary
    ? planCanary(start.replicas)
    : planRollout({
        replicas: start.replicas,
        maxSurgePercent: input.settings.rolling_deploy_config.max_surge_percent,
        maxUnavailablePercent: input.settings.rolling_deploy_config.max_unavailable_percent,
        rolling,
      });
  // Between steps: the stabilization time (rolling) or an equal share of the ramp-up window (canary).
  const pauseBetweenSteps = canary ? input.settings.ramp_up_duration_seconds / CANARY_STAGES : rolling ? input.settings.rolling_deploy_config.stabilization_time_seconds : 0;
  status.total_steps = plan.steps.length;
  let phase: 'RAMPING_UP' | 'RAMPING_DOWN' = 'RAMPING_UP';
  await enter('RAMPING_UP');

  try {
    for (;;) {
      // A step boundary: act on what was asked, strongest first.
      const pending = control.pending;
      if (pending === 'FORCE_ROLL_FORWARD') return await complete();
      if (pending === 'FORCE_CANCEL') {
        await rollBack();
        return await finish('CANCELED', 'force-cancelled: all traffic on the previous deployment');
      }
      if (pending === 'GRACEFUL_CANCEL' && phase === 'RAMPING_UP') {
        control = { ...control, pending: null };
        status.pending_action = null;
        phase = 'RAMPING_DOWN';
        await enter('RAMPING_DOWN');
        continue;
      }
      if (pending === 'PAUSE') {
        control = { ...control, pending: null, pausedFrom: phase };
        status.pending_action = null;
        await enter('PAUSED');
        await condition(() => control.pending !== null && control.pending !== 'PAUSE');
        if (control.pending === 'RESUME') {
          control = { ...control, pending: null, pausedFrom: null };
          await enter(phase);
        }
        continue;
      }

      if (phase === 'RAMPING_UP') {
        if (status.step >= plan.steps.length) return await complete();
        await run(plan.steps[status.step]!, true);
        status.step++;
        await record();
        if (status.step < plan.steps.length && pauseBetweenSteps > 0) {
          await condition(() => control.pending !== null, pauseBetweenSteps * 1000);
        }
      } else {
        if (status.step <= 0) {
          await scale('candidate', 0, { interruptible: false });
          return await finish('CANCELED', 'cancelled: ramped down to the previous deployment');
        }
        await run(stepBack(plan.states[status.step]!, plan.states[status.step - 1]!), true);
        status.step--;
        await record();
      }
    }
  } catch (error) {
    return recover(error);
  }
}
