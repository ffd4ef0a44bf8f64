/**
 * promotionWorkflow (docs/architecture.md §4): moves an environment from its current deployment to a
 * candidate, step by step (rolling) or at once (instant), obeying pause, resume, cancel,
 * force-cancel and force-roll-forward. Every action and outcome goes to the audit log; the
 * promotion's record in the store is written by this workflow alone, from its first activity to
 * its end.
 *
 * RELEASING → RAMPING_UP → SUCCEEDED, with PAUSED, RAMPING_DOWN → CANCELED, and FAILED (the
 * candidate not ready in time, crash-looping, a route not applied, or anything unexpected: all
 * traffic back on the previous deployment). Every path ends in one of the three, recorded:
 * the endings run where a cancellation cannot reach them, and a cancellation of the workflow
 * itself (`temporal workflow cancel`) is a graceful cancel.
 *
 * Actions arrive as the `promotionAction` Update (validated against the state × action table,
 * answered once they took effect) or as signals (the Temporal UI, `temporal workflow signal`).
 * A long promotion continues as new with its state once its history grows.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  isCancellation,
  makeContinueAsNewFunc,
  patched,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { PROMOTION_NOT_RECORDED, REPLICAS_NOT_READY, ROUTE_NOT_APPLIED } from '../contracts/failures';
import { failureOfType, promotionSteps as quick, promotionWaits as waits } from './activity-proxies';
import { promotionWorkflowV1 } from './legacy/promotion-v1';
import type { AuditSource } from '../shared/views';
import {
  ACTION_REFUSED,
  CANCEL_ACTOR,
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  promotionActionUpdate,
  promotionStatusQuery,
  resumePromotionSignal,
  SIGNAL_ACTOR,
  type PromotionStatus,
} from '../contracts/messages';
import { acceptAction, actionRefusal, actionTookEffect, type PromotionControlState } from '../contracts/promotion-rules';
import { CANARY_STAGES, planCanary, planRollout, stepBack, type RolloutAction, type RolloutPlan } from './rollout-plan';
import type { PromotionActionRecord, PromotionStatusName, PromotionActionName } from '../shared/promotion-status';
import type { PromotionStart } from '../contracts/activities';
import type { PromotionContinuation, PromotionOutcome, PromotionWorkflowInput } from '../contracts/workflows';
import type { NewAuditEntry, PromotionPatch } from '../contracts/records';


/** The patch that marks a history as this version (Updates, its own record, endings that always land). */
export const PROMOTION_V2_PATCH = 'promotion-v2';

/** A promotion continues as new once its history has this many events (or Temporal suggests it). */
export const HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW = 2_000;

/** How many received actions the status keeps (the audit log keeps them all). */
const ACTIONS_KEPT = 100;
/** How many of them an Update's answer carries. */
const ACTIONS_ANSWERED = 10;

/** A paused promotion wakes this often to see whether its history should continue as new. */
const PAUSED_CHECK_MS = 60 * 60 * 1000;

/** The candidate did not become ready, or a route was not applied: the promotion rolls back and fails. */
const ROLLOUT_FAILED = 'RolloutFailed';
/** A force action stopped a wait: the rollout acts on it from where it stands. */
const INTERRUPTED = 'Interrupted';

const iso = (): string => new Date().toISOString();
const isFailure = (error: unknown, type: string): error is ApplicationFailure => error instanceof ApplicationFailure && error.type === type;
const messageOf = (error: unknown): string => {
  const cause = (error as { cause?: { message?: string } }).cause;
  return cause?.message ?? (error as Error).message ?? String(error);
};

/** Moves an environment to a candidate deployment; see the module comment. */
export async function promotionWorkflow(input: PromotionWorkflowInput): Promise<PromotionOutcome> {
  if (!patched(PROMOTION_V2_PATCH)) return promotionWorkflowV1(input);
  // Nothing from outside cancels the work itself: a cancellation of the workflow arrives as an
  // action (below), and everything else runs where it cannot reach.
  const root = CancellationScope.current();
  return CancellationScope.nonCancellable(() => promote(input, root));
}

async function promote(input: PromotionWorkflowInput, root: CancellationScope): Promise<PromotionOutcome> {
  const carried = input.continued;
  const startedAt = input.startedAt ?? iso();

  // ---- state ----
  const status: PromotionStatus = carried?.status ?? {
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
    finishing: null,
    version: 2,
  };
  let control: PromotionControlState = carried?.control ?? { status: 'RELEASING', pending: null, pausedFrom: null, finishing: null };
  let phase: 'RAMPING_UP' | 'RAMPING_DOWN' = carried?.phase ?? 'RAMPING_UP';
  let routeApplied = carried?.routeApplied ?? true;
  /** When the stabilization wait after the last step ends (workflow time, ms). */
  let stabilizedAt = carried?.stabilizedAt ?? 0;
  /** Set once the end is in the store: an Update that waits for the end answers only then. */
  let endRecorded = false;
  /** The status the store's record shows (an Update waits for its effect to be recorded). */
  let recordedStatus: PromotionStatusName = carried?.status.status ?? 'RELEASING';
  const unaudited: NewAuditEntry[] = carried?.unaudited ?? [];
  let plan: RolloutPlan | undefined;
  let start: PromotionStart | undefined = carried?.start;

  /** Makes the status the query and Updates answer follow the control state. */
  const setControl = (next: Partial<PromotionControlState>): void => {
    control = { ...control, ...next };
    status.status = control.status;
    status.pending_action = control.pending === 'RESUME' ? null : control.pending;
    status.paused_from = control.status === 'PAUSED' ? control.pausedFrom : null;
    status.finishing = control.finishing ?? null;
  };

  const audit = (action: string, actor: string, details: Record<string, unknown>, source?: AuditSource): void => {
    unaudited.push({ model_id: input.modelId, actor, action, target: input.environment, details: { promotion_id: input.promotionId, ...details }, at: iso(), ...(source ? { source } : {}) });
  };

  const isEnded = (): boolean => status.status === 'SUCCEEDED' || status.status === 'FAILED' || status.status === 'CANCELED';

  // ---- handlers ----
  /** Takes an action the table allows (else records it ignored); returns the refusal, if any. */
  const receive = (action: PromotionActionName, actor: string, source?: AuditSource): string | undefined => {
    const refusal = actionRefusal(control, action);
    const record: PromotionActionRecord = { action, actor, at: iso(), outcome: refusal ? 'ignored' : 'applied', status: control.status };
    status.actions.push(record);
    if (status.actions.length > ACTIONS_KEPT) status.actions.splice(1, status.actions.length - ACTIONS_KEPT);
    audit(action, actor, { outcome: record.outcome, status: control.status, ...(refusal ? { reason: refusal } : {}) }, source);
    if (!refusal) setControl(acceptAction(control, action));
    return refusal;
  };
  setHandler(pausePromotionSignal, (request) => void receive('PAUSE', request?.actor ?? SIGNAL_ACTOR));
  setHandler(resumePromotionSignal, (request) => void receive('RESUME', request?.actor ?? SIGNAL_ACTOR));
  setHandler(cancelPromotionSignal, (request) => void receive('GRACEFUL_CANCEL', request?.actor ?? SIGNAL_ACTOR));
  setHandler(forceCancelPromotionSignal, (request) => void receive('FORCE_CANCEL', request?.actor ?? SIGNAL_ACTOR));
  setHandler(forceRollForwardPromotionSignal, (request) => void receive('FORCE_ROLL_FORWARD', request?.actor ?? SIGNAL_ACTOR));
  setHandler(
    promotionActionUpdate,
    async ({ action, actor, source }) => {
      receive(action, actor ?? SIGNAL_ACTOR, source);
      // An effect counts once it is recorded (an ending too), so whoever hears "done" finds it in the store.
      // (Handlers run in the workflow's root scope: a cancellation of the workflow must not end the wait.)
      await CancellationScope.nonCancellable(() =>
        condition(() => endRecorded || (status.finishing === null && !isEnded() && recordedStatus === control.status && actionTookEffect(action, control))),
      );
      // The latest actions only: the answer stays small (the query and the audit log have them all).
      return { ...status, actions: status.actions.slice(-ACTIONS_ANSWERED) };
    },
    {
      validator: ({ action }) => {
        const refusal = actionRefusal(control, action);
        if (refusal) throw ApplicationFailure.create({ type: ACTION_REFUSED, message: refusal, nonRetryable: true });
      },
    },
  );
  setHandler(promotionStatusQuery, () => status);

  // A cancellation of the workflow itself is a graceful cancel, taken like any other action.
  root.cancelRequested.catch(() => receive('GRACEFUL_CANCEL', CANCEL_ACTOR));

  // Audit entries are written in the background, in order, so a long step never delays them.
  let auditing = true;
  let auditWriting = false;
  const auditor = (async () => {
    while (auditing || unaudited.length > 0) {
      await condition(() => unaudited.length > 0 || !auditing);
      const batch = unaudited.splice(0);
      if (batch.length === 0) continue;
      auditWriting = true;
      await quick.recordAudit({ entries: batch });
      auditWriting = false;
    }
  })();
  const flushAudit = async (): Promise<void> => {
    auditing = false;
    await auditor;
  };

  // ---- helpers ----
  const record = async (patch: PromotionPatch = {}): Promise<void> => {
    status.updated_at = iso();
    const recording = status.status;
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
    recordedStatus = recording;
  };

  const enter = async (next: PromotionStatusName): Promise<void> => {
    setControl({ status: next });
    upsertMemo({ status: next });
    await record();
  };

  const forcePending = (): boolean => control.pending === 'FORCE_CANCEL' || control.pending === 'FORCE_ROLL_FORWARD';
  const deadline = (): number => Date.now() + input.settings.promotion_timeout_seconds * 1000;

  /** Runs a wait that a force action stops (an `Interrupted` failure), or not; a failed wait fails the rollout. */
  const wait = async (run: () => Promise<void>, interruptible: boolean): Promise<void> => {
    const scope = new CancellationScope();
    let settled = false;
    if (interruptible) {
      void condition(() => settled || forcePending()).then(() => {
        if (!settled) scope.cancel();
      });
    }
    try {
      await scope.run(run);
    } catch (error) {
      if (isCancellation(error) && forcePending()) {
        throw ApplicationFailure.create({ type: INTERRUPTED, message: `${control.pending} interrupted the step`, nonRetryable: true });
      }
      const failed = failureOfType(error, REPLICAS_NOT_READY) ?? failureOfType(error, ROUTE_NOT_APPLIED);
      if (failed) throw ApplicationFailure.create({ type: ROLLOUT_FAILED, message: failed.message, nonRetryable: true });
      throw error;
    } finally {
      settled = true;
    }
  };

  const scale = async (side: 'candidate' | 'previous', planned: number, interruptible: boolean): Promise<void> => {
    const deploymentId = side === 'candidate' ? input.candidateDeploymentId : status.previous.deployment_id;
    if (!deploymentId) return;
    const replicas = Math.max(planned, start!.floors[side]); // never below what another environment needs
    const before = status[side].replicas;
    status[side].replicas = replicas;
    await quick.scaleDeployment({ deploymentId, replicas });
    await record();
    if (replicas > before) await wait(() => waits.awaitReplicasReady({ deploymentId, replicas, deadlineMs: deadline() }), interruptible);
  };

  const route = async (percent: number, interruptible: boolean): Promise<void> => {
    const generation = await quick.setTraffic({
      modelId: input.modelId,
      environment: input.environment,
      candidateId: input.candidateDeploymentId,
      previousId: status.previous.deployment_id,
      percent,
    });
    status.percent_traffic_to_new_version = percent;
    routeApplied = false;
    await wait(() => waits.awaitRouteApplied({ modelId: input.modelId, environment: input.environment, generation, deadlineMs: deadline() }), interruptible);
    routeApplied = true;
    await record();
  };

  const keepPrevious = input.settings.promotion_cleanup_strategy === 'KEEP';
  const run = async (actions: RolloutAction[]): Promise<void> => {
    for (const action of actions) {
      if (action.kind === 'route') await route(action.percent, true);
      else if (action.side === 'previous' && keepPrevious && action.replicas < status.previous.replicas) continue;
      else await scale(action.side, action.replicas, true);
    }
  };

  const finish = async (outcome: PromotionOutcome['status'], message: string | null = null): Promise<PromotionOutcome> => {
    status.message = message;
    setControl({ status: outcome, pending: null, finishing: null });
    upsertMemo({ status: outcome });
    // The audit trail is complete before the record says the promotion ended, so whoever sees
    // the end (an API action, `--follow`) also finds every entry.
    audit(`PROMOTION_${outcome}`, 'gantry', { message, percent_traffic_to_new_version: status.percent_traffic_to_new_version });
    await flushAudit();
    await record({ ended_at: iso() });
    endRecorded = true;
    await condition(allHandlersFinished, '1 minute');
    return { promotion_id: input.promotionId, status: outcome, message };
  };

  /**
   * Takes every step of a rollback, each bounded by its deadline, and never throws: returns
   * what could not be done, to say in the promotion's message. A failed candidate loses its
   * traffic first; a healthy one (a force-cancel) only once the previous deployment has a
   * ready replica.
   */
  const rollBack = async (candidateFailed: boolean): Promise<string> => {
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<void>): Promise<void> => {
      try {
        await step();
      } catch (error) {
        problems.push(`${what}: ${messageOf(error)}`);
      }
    };
    const previousId = status.previous.deployment_id;
    if (previousId && !candidateFailed && status.previous.replicas < 1) await attempt('waking the previous deployment', () => scale('previous', 1, false));
    if (status.percent_traffic_to_new_version > 0 || !routeApplied) await attempt('moving traffic back', () => route(0, false));
    if (previousId) await attempt('restoring the previous deployment', () => scale('previous', plan?.replicas ?? 1, false));
    await attempt('scaling the candidate down', () => scale('candidate', 0, false));
    status.step = 0;
    return problems.length > 0 ? ` (but ${problems.join('; ')})` : '';
  };

  const fail = async (cause: string): Promise<PromotionOutcome> => {
    setControl({ pending: null, finishing: 'ROLLING_BACK' });
    status.message = cause;
    await record();
    const problems = await rollBack(true);
    return finish('FAILED', `${cause}; all traffic is back on the previous deployment${problems}`);
  };

  const cancelAtOnce = async (): Promise<PromotionOutcome> => {
    setControl({ pending: null, finishing: 'ROLLING_BACK' });
    const problems = await rollBack(false);
    return finish('CANCELED', `force-cancelled: all traffic on the previous deployment${problems}`);
  };

  /** Candidate to N and all traffic, then the environment points at it and the previous is cleaned up. */
  const complete = async (): Promise<PromotionOutcome> => {
    setControl({ pending: null, finishing: 'COMPLETING' });
    const n = plan!.replicas;
    let switched = false;
    try {
      // The candidate must be ready at N before it takes all traffic, also when a force action
      // interrupted the wait of a step that had already asked for N.
      if (status.candidate.replicas < n) await scale('candidate', n, false);
      else await wait(() => waits.awaitReplicasReady({ deploymentId: input.candidateDeploymentId, replicas: status.candidate.replicas, deadlineMs: deadline() }), false);
      if (status.percent_traffic_to_new_version < 100 || !routeApplied) await route(100, false);
      const generation = await quick.setCurrentDeployment({ modelId: input.modelId, environment: input.environment, deploymentId: input.candidateDeploymentId });
      switched = true;
      await wait(() => waits.awaitRouteApplied({ modelId: input.modelId, environment: input.environment, generation, deadlineMs: deadline() }), false);
    } catch (error) {
      // Before the switch the previous deployment still serves: roll back. After it, the
      // candidate is the environment's deployment and stays so.
      if (!switched) return fail(messageOf(error));
      status.message = `the switch to the candidate was not verified: ${messageOf(error)}`;
    }
    if (status.previous.deployment_id) {
      try {
        const cleanup = await quick.cleanUpPrevious({ deploymentId: status.previous.deployment_id, strategy: input.settings.promotion_cleanup_strategy });
        if (cleanup.applied !== 'KEEP') status.previous.replicas = 0;
        if (cleanup.reason) audit('CLEANUP_SKIPPED', 'gantry', { deployment_id: status.previous.deployment_id, reason: cleanup.reason });
      } catch (error) {
        // The candidate serves: the promotion succeeded whatever happens to the previous deployment.
        audit('CLEANUP_SKIPPED', 'gantry', { deployment_id: status.previous.deployment_id, reason: messageOf(error) });
      }
    }
    status.step = status.total_steps;
    return finish('SUCCEEDED', status.message);
  };

  /** Ends the rollout after a failure or interruption thrown out of a step. */
  const recover = async (error: unknown): Promise<PromotionOutcome> => {
    if (isFailure(error, INTERRUPTED)) {
      if (control.pending === 'FORCE_ROLL_FORWARD') return complete();
      return cancelAtOnce();
    }
    if (isFailure(error, ROLLOUT_FAILED)) return fail(error.message);
    return fail(`unexpected error: ${messageOf(error)}`);
  };

  /**
   * Whether to continue as new now: the history is long, and the promotion is quiet — no action
   * pending or waiting in an Update handler, no audit write under way (entries not yet written
   * are carried over). Waits wake up for it, so it happens between two actions however close.
   */
  const continueAsNewDue = (): boolean => {
    const info = workflowInfo();
    const long = info.continueAsNewSuggested || info.historyLength > HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW;
    return long && control.pending === null && !auditWriting && allHandlersFinished();
  };

  /** Continues as new with the promotion's state (nothing awaited before it, so no action can slip in). */
  const continueAsNewWithState = (): Promise<never> => {
    const continued: PromotionContinuation = {
      status: { ...status, actions: status.actions.slice(-ACTIONS_KEPT) },
      control,
      phase,
      start: start!,
      routeApplied,
      stabilizedAt,
      unaudited: unaudited.splice(0),
    };
    // The memo names the promotion each run belongs to (the repair loop matches rows by it).
    return makeContinueAsNewFunc<typeof promotionWorkflow>({ memo: { promotion_id: input.promotionId, status: status.status } })({ ...input, startedAt, continued });
  };

  // ---- main loop ----
  const body = async (): Promise<PromotionOutcome> => {
    if (!start) {
      start = await quick.beginPromotion({
        promotionId: input.promotionId,
        record: {
          id: input.promotionId,
          model_id: input.modelId,
          environment: input.environment,
          candidate_deployment_id: input.candidateDeploymentId,
          settings: input.settings,
          actor: input.actor,
          workflow_id: workflowInfo().workflowId,
          started_at: startedAt,
        },
      });
      if (start.refused) {
        // beginPromotion recorded it ended, with the reason.
        status.message = `refused: ${start.refused}`;
        setControl({ status: 'FAILED' });
        upsertMemo({ status: 'FAILED' });
        endRecorded = true;
        await flushAudit();
        return { promotion_id: input.promotionId, status: 'FAILED', message: status.message };
      }
      audit('PROMOTE', input.actor, { candidate_deployment_id: input.candidateDeploymentId, settings: input.settings }, input.actorSource);
      status.previous = { deployment_id: start.previousDeploymentId, replicas: start.previousReplicas };
    }
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
    if (!carried) await enter('RAMPING_UP');

    try {
      for (;;) {
        // A step boundary: act on what was asked, strongest first.
        if (continueAsNewDue()) await continueAsNewWithState();
        const pending = control.pending;
        if (pending === 'FORCE_ROLL_FORWARD') return await complete();
        if (pending === 'FORCE_CANCEL') return await cancelAtOnce();
        if (control.status === 'PAUSED') {
          if (pending === 'RESUME') {
            setControl({ pending: null, pausedFrom: null });
            await enter(phase);
          } else if (pending === 'GRACEFUL_CANCEL') {
            setControl({ pending: null, pausedFrom: null });
            phase = 'RAMPING_DOWN';
            await enter('RAMPING_DOWN');
          } else {
            await condition(() => control.pending !== null || continueAsNewDue(), PAUSED_CHECK_MS);
          }
          continue;
        }
        if (pending === 'GRACEFUL_CANCEL' && phase === 'RAMPING_UP') {
          setControl({ pending: null });
          phase = 'RAMPING_DOWN';
          await enter('RAMPING_DOWN');
          continue;
        }
        if (pending === 'PAUSE') {
          setControl({ pending: null, pausedFrom: phase });
          await enter('PAUSED');
          continue;
        }

        if (phase === 'RAMPING_UP') {
          // The stabilization wait after a step; an action ends it, and after a resume the rest of it is waited.
          const stabilizing = stabilizedAt - Date.now();
          if (stabilizing > 0) {
            await condition(() => control.pending !== null || continueAsNewDue(), stabilizing);
            if (control.pending !== null || continueAsNewDue()) continue;
          }
          if (status.step >= plan.steps.length) return await complete();
          await run(plan.steps[status.step]!);
          status.step++;
          await record();
          if (status.step < plan.steps.length) stabilizedAt = Date.now() + pauseBetweenSteps * 1000;
        } else {
          if (status.step <= 0) {
            await scale('candidate', 0, false);
            return await finish('CANCELED', 'cancelled: ramped down to the previous deployment');
          }
          await run(stepBack(plan.states[status.step]!, plan.states[status.step - 1]!));
          status.step--;
          await record();
        }
      }
    } catch (error) {
      if (error instanceof ContinueAsNew) throw error;
      return recover(error);
    }
  };

  try {
    return await body();
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    // Only the end's own record can get here (its activity is retried until it succeeds, so
    // this means the store refused it for good); the repair loop ends the record instead.
    throw ApplicationFailure.create({ type: PROMOTION_NOT_RECORDED, message: `the promotion could not record its end: ${messageOf(error)}`, nonRetryable: true });
  }
}
