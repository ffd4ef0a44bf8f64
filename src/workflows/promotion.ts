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
import type { PromotionStart } from '../contracts/activities';
import { acceptAction, actionRefusal, actionTookEffect, type PromotionControlState } from '../contracts/promotion-rules';
import type { NewAuditEntry, PromotionPatch } from '../contracts/records';
import type { PromotionContinuation, PromotionOutcome, PromotionWorkflowInput } from '../contracts/workflows';
import type { PromotionActionName, PromotionActionRecord, PromotionStatusName } from '../shared/promotion-status';
import type { PromotionSettings } from '../shared/schemas';
import type { AuditSource } from '../shared/views';
import { decide, type PromotionLoopState } from './promotion-decisions';
import { CANARY_STAGES, planCanary, planRollout, stepBack, type RolloutAction, type RolloutPlan } from './rollout-plan';

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

/** The plan a promotion follows, and how long it lets each step settle (seconds). */
function rolloutOf(start: PromotionStart, settings: PromotionSettings): { plan: RolloutPlan; pauseBetweenSteps: number } {
  // A previous deployment that sleeps serves nothing: there is no traffic to move step by step.
  const hasTraffic = start.previousDeploymentId !== null && start.previousReplicas > 0;
  const canary = settings.ramp_up_while_promoting && hasTraffic;
  const rolling = !canary && settings.rolling_deploy && hasTraffic;
  const plan = canary
    ? planCanary(start.replicas)
    : planRollout({
        replicas: start.replicas,
        maxSurgePercent: settings.rolling_deploy_config.max_surge_percent,
        maxUnavailablePercent: settings.rolling_deploy_config.max_unavailable_percent,
        rolling,
      });
  // Between steps: the stabilization time (rolling) or an equal share of the ramp-up window (canary).
  const pauseBetweenSteps = canary ? settings.ramp_up_duration_seconds / CANARY_STAGES : rolling ? settings.rolling_deploy_config.stabilization_time_seconds : 0;
  return { plan, pauseBetweenSteps };
}

async function promote(input: PromotionWorkflowInput, root: CancellationScope): Promise<PromotionOutcome> {
  const promotion = new Promotion(input);
  promotion.listen(root);
  promotion.startAuditor();
  try {
    return await promotion.run();
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    // Only the end's own record can get here (its activity is retried until it succeeds, so
    // this means the store refused it for good); the repair loop ends the record instead.
    throw ApplicationFailure.create({ type: PROMOTION_NOT_RECORDED, message: `the promotion could not record its end: ${messageOf(error)}`, nonRetryable: true });
  }
}

/**
 * One promotion: its state, the handlers that take actions, and one method per step of the
 * rollout. `run` is the controller loop: at every step boundary it asks `decide` what comes
 * next and carries it out.
 */
class Promotion {
  private readonly carried: PromotionContinuation | undefined;
  private readonly startedAt: string;
  /** What the query and Updates answer, and what the record mirrors. */
  private readonly status: PromotionStatus;
  private control: PromotionControlState;
  private phase: 'RAMPING_UP' | 'RAMPING_DOWN';
  /** Whether the last route write was verified applied. */
  private routeApplied: boolean;
  /** When the stabilization wait after the last step ends (workflow time, ms). */
  private stabilizedAt: number;
  /** Set once the end is in the store: an Update that waits for the end answers only then. */
  private endRecorded = false;
  /** The status the store's record shows (an Update waits for its effect to be recorded). */
  private recordedStatus: PromotionStatusName;
  /** Audit entries not written yet, in order. */
  private readonly unaudited: NewAuditEntry[];
  private plan: RolloutPlan | undefined;
  private start: PromotionStart | undefined;
  private auditing = true;
  private auditWriting = false;
  private auditor: Promise<void> = Promise.resolve();
  private readonly keepPrevious: boolean;

  constructor(private readonly input: PromotionWorkflowInput) {
    const carried = input.continued;
    const startedAt = input.startedAt ?? iso();
    this.carried = carried;
    this.startedAt = startedAt;
    this.status = carried?.status ?? {
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
    this.control = carried?.control ?? { status: 'RELEASING', pending: null, pausedFrom: null, finishing: null };
    this.phase = carried?.phase ?? 'RAMPING_UP';
    this.routeApplied = carried?.routeApplied ?? true;
    this.stabilizedAt = carried?.stabilizedAt ?? 0;
    this.recordedStatus = carried?.status.status ?? 'RELEASING';
    this.unaudited = carried?.unaudited ?? [];
    this.start = carried?.start;
    this.keepPrevious = input.settings.promotion_cleanup_strategy === 'KEEP';
  }

  // ---- the controller loop ----

  /** Begins (or picks up a continued run), then carries out what `decide` says until the promotion ends. */
  async run(): Promise<PromotionOutcome> {
    if (!this.start) {
      const refused = await this.begin();
      if (refused) return refused;
    }
    const start = this.start!;
    const { plan, pauseBetweenSteps } = rolloutOf(start, this.input.settings);
    this.plan = plan;
    this.status.total_steps = plan.steps.length;
    if (!this.carried) await this.enter('RAMPING_UP');

    /** Set when a stabilization wait ran to its end with nothing pending: the next step is due now, whatever fraction of a millisecond the clock says is left. */
    let stabilized = false;
    try {
      for (;;) {
        // A step boundary: act on what was asked, strongest first.
        const decision = decide(this.loopState(stabilized), this.control.pending);
        stabilized = false;
        switch (decision.kind) {
          case 'CONTINUE_AS_NEW':
            return await this.continueAsNewWithState();
          case 'COMPLETE':
            return await this.complete();
          case 'CANCEL_AT_ONCE':
            return await this.cancelAtOnce();
          case 'RESUME':
            await this.resume();
            break;
          case 'START_RAMPING_DOWN':
            await this.startRampingDown();
            break;
          case 'PAUSE':
            await this.pause();
            break;
          case 'WAIT_FOR_ACTION':
            await this.waitForAction();
            break;
          case 'STABILIZE':
            stabilized = await this.stabilize(decision.ms);
            break;
          case 'STEP_UP':
            await this.stepUp(pauseBetweenSteps);
            break;
          case 'STEP_DOWN':
            await this.stepDown();
            break;
          case 'END_RAMPED_DOWN':
            return await this.endRampedDown();
        }
      }
    } catch (error) {
      if (error instanceof ContinueAsNew) throw error;
      return this.recover(error);
    }
  }

  /** Where the rollout stands, for `decide`. */
  private loopState(stabilized: boolean): PromotionLoopState {
    return {
      status: this.control.status,
      phase: this.phase,
      step: this.status.step,
      totalSteps: this.plan!.steps.length,
      stabilizingMs: stabilized ? 0 : this.stabilizedAt - Date.now(),
      continueAsNewDue: this.continueAsNewDue(),
    };
  }

  // ---- the steps ----

  /**
   * Records the promotion and learns what it starts from (the previous deployment, N, the
   * floors). Returns the outcome when the promotion was refused (another one controls these
   * deployments), else nothing.
   */
  private async begin(): Promise<PromotionOutcome | undefined> {
    const input = this.input;
    this.start = await quick.beginPromotion({
      promotionId: input.promotionId,
      record: {
        id: input.promotionId,
        model_id: input.modelId,
        environment: input.environment,
        candidate_deployment_id: input.candidateDeploymentId,
        settings: input.settings,
        actor: input.actor,
        workflow_id: workflowInfo().workflowId,
        started_at: this.startedAt,
      },
    });
    if (this.start.refused) {
      // beginPromotion recorded it ended, with the reason.
      this.status.message = `refused: ${this.start.refused}`;
      this.setControl({ status: 'FAILED' });
      upsertMemo({ status: 'FAILED' });
      this.endRecorded = true;
      await this.flushAudit();
      return { promotion_id: input.promotionId, status: 'FAILED', message: this.status.message };
    }
    this.audit('PROMOTE', input.actor, { candidate_deployment_id: input.candidateDeploymentId, settings: input.settings }, input.actorSource);
    this.status.previous = { deployment_id: this.start.previousDeploymentId, replicas: this.start.previousReplicas };
    return undefined;
  }

  /** Takes the next step of the plan, then starts the stabilization wait before the one after. */
  private async stepUp(pauseBetweenSteps: number): Promise<void> {
    const plan = this.plan!;
    await this.runActions(plan.steps[this.status.step]!);
    this.status.step++;
    await this.record();
    if (this.status.step < plan.steps.length) this.stabilizedAt = Date.now() + pauseBetweenSteps * 1000;
  }

  /** Undoes the last step taken: previous up first, then the traffic, then the candidate down. */
  private async stepDown(): Promise<void> {
    const plan = this.plan!;
    await this.runActions(stepBack(plan.states[this.status.step]!, plan.states[this.status.step - 1]!));
    this.status.step--;
    await this.record();
  }

  /** Every step is undone: the candidate goes to zero and the promotion ends CANCELED. */
  private async endRampedDown(): Promise<PromotionOutcome> {
    await this.scale('candidate', 0, false);
    return this.finish('CANCELED', 'cancelled: ramped down to the previous deployment');
  }

  /**
   * Waits out the rest of the stabilization after a step; an action (or the time to continue
   * as new) ends it early. Whether it ran to its end with nothing to act on.
   */
  private async stabilize(ms: number): Promise<boolean> {
    await condition(() => this.control.pending !== null || this.continueAsNewDue(), ms);
    return !(this.control.pending !== null || this.continueAsNewDue());
  }

  /** PAUSED at a step boundary, remembering the phase to return to. */
  private async pause(): Promise<void> {
    this.setControl({ pending: null, pausedFrom: this.phase });
    await this.enter('PAUSED');
  }

  /** Paused: sleeps until an action arrives, waking every hour to see whether to continue as new. */
  private async waitForAction(): Promise<void> {
    await condition(() => this.control.pending !== null || this.continueAsNewDue(), PAUSED_CHECK_MS);
  }

  /** Back to the phase it paused in (the rest of a stabilization wait is still waited). */
  private async resume(): Promise<void> {
    this.setControl({ pending: null, pausedFrom: null });
    await this.enter(this.phase);
  }

  /** A graceful cancel: from now on the rollout undoes its steps one by one. */
  private async startRampingDown(): Promise<void> {
    this.setControl({ pending: null, pausedFrom: null });
    this.phase = 'RAMPING_DOWN';
    await this.enter('RAMPING_DOWN');
  }

  /** Runs a step's scale and route actions in order (with KEEP, the previous deployment is never scaled down). */
  private async runActions(actions: RolloutAction[]): Promise<void> {
    for (const action of actions) {
      if (action.kind === 'route') await this.route(action.percent, true);
      else if (action.side === 'previous' && this.keepPrevious && action.replicas < this.status.previous.replicas) continue;
      else await this.scale(action.side, action.replicas, true);
    }
  }

  /**
   * Scales one side to `planned` replicas (never below what another environment needs) and,
   * when that is more than it had, waits until they are ready.
   */
  private async scale(side: 'candidate' | 'previous', planned: number, interruptible: boolean): Promise<void> {
    const deploymentId = side === 'candidate' ? this.input.candidateDeploymentId : this.status.previous.deployment_id;
    if (!deploymentId) return; // no previous deployment: nothing to scale
    const replicas = Math.max(planned, this.start!.floors[side]); // never below what another environment needs
    const before = this.status[side].replicas;
    this.status[side].replicas = replicas;
    await quick.scaleDeployment({ deploymentId, replicas });
    await this.record();
    if (replicas > before) await this.wait(() => waits.awaitReplicasReady({ deploymentId, replicas, deadlineMs: this.deadline() }), interruptible);
  }

  /** Shifts `percent` of the traffic to the candidate and waits until every gateway applies it. */
  private async route(percent: number, interruptible: boolean): Promise<void> {
    const { modelId, environment } = this.input;
    const generation = await quick.setTraffic({
      modelId,
      environment,
      candidateId: this.input.candidateDeploymentId,
      previousId: this.status.previous.deployment_id,
      percent,
    });
    this.status.percent_traffic_to_new_version = percent;
    this.routeApplied = false;
    await this.wait(() => waits.awaitRouteApplied({ modelId, environment, generation, deadlineMs: this.deadline() }), interruptible);
    this.routeApplied = true;
    await this.record();
  }

  /** Runs a wait that a force action stops (an `Interrupted` failure), or not; a failed wait fails the rollout. */
  private async wait(run: () => Promise<void>, interruptible: boolean): Promise<void> {
    const scope = new CancellationScope();
    let settled = false;
    if (interruptible) {
      void condition(() => settled || this.forcePending()).then(() => {
        if (!settled) scope.cancel();
      });
    }
    try {
      await scope.run(run);
    } catch (error) {
      if (isCancellation(error) && this.forcePending()) {
        throw ApplicationFailure.create({ type: INTERRUPTED, message: `${this.control.pending} interrupted the step`, nonRetryable: true });
      }
      const failed = failureOfType(error, REPLICAS_NOT_READY) ?? failureOfType(error, ROUTE_NOT_APPLIED);
      if (failed) throw ApplicationFailure.create({ type: ROLLOUT_FAILED, message: failed.message, nonRetryable: true });
      throw error;
    } finally {
      settled = true;
    }
  }

  // ---- the endings ----

  /** Candidate to N and all traffic, then the environment points at it and the previous is cleaned up. */
  private async complete(): Promise<PromotionOutcome> {
    this.setControl({ pending: null, finishing: 'COMPLETING' });
    const n = this.plan!.replicas;
    const { modelId, environment, candidateDeploymentId } = this.input;
    let switched = false;
    try {
      // The candidate must be ready at N before it takes all traffic, also when a force action
      // interrupted the wait of a step that had already asked for N.
      if (this.status.candidate.replicas < n) await this.scale('candidate', n, false);
      else await this.wait(() => waits.awaitReplicasReady({ deploymentId: candidateDeploymentId, replicas: this.status.candidate.replicas, deadlineMs: this.deadline() }), false);
      if (this.status.percent_traffic_to_new_version < 100 || !this.routeApplied) await this.route(100, false);
      const generation = await quick.setCurrentDeployment({ modelId, environment, deploymentId: candidateDeploymentId });
      switched = true;
      await this.wait(() => waits.awaitRouteApplied({ modelId, environment, generation, deadlineMs: this.deadline() }), false);
    } catch (error) {
      // Before the switch the previous deployment still serves: roll back. After it, the
      // candidate is the environment's deployment and stays so.
      if (!switched) return this.fail(messageOf(error));
      this.status.message = `the switch to the candidate was not verified: ${messageOf(error)}`;
    }
    await this.cleanUpPrevious();
    this.status.step = this.status.total_steps;
    return this.finish('SUCCEEDED', this.status.message);
  }

  /** After the switch: what the cleanup strategy says happens to the previous deployment (a failure only skips it). */
  private async cleanUpPrevious(): Promise<void> {
    const previousId = this.status.previous.deployment_id;
    if (!previousId) return; // the environment had no deployment before
    try {
      const cleanup = await quick.cleanUpPrevious({ deploymentId: previousId, strategy: this.input.settings.promotion_cleanup_strategy });
      if (cleanup.applied !== 'KEEP') this.status.previous.replicas = 0;
      if (cleanup.reason) this.audit('CLEANUP_SKIPPED', 'gantry', { deployment_id: previousId, reason: cleanup.reason });
    } catch (error) {
      // The candidate serves: the promotion succeeded whatever happens to the previous deployment.
      this.audit('CLEANUP_SKIPPED', 'gantry', { deployment_id: previousId, reason: messageOf(error) });
    }
  }

  /** A force-cancel: all traffic back to the previous deployment at once, then its replicas. */
  private async cancelAtOnce(): Promise<PromotionOutcome> {
    this.setControl({ pending: null, finishing: 'ROLLING_BACK' });
    const problems = await this.rollBack(false);
    return this.finish('CANCELED', `force-cancelled: all traffic on the previous deployment${problems}`);
  }

  /** A failed rollout: traffic off the candidate first, then everything back as it was. */
  private async fail(cause: string): Promise<PromotionOutcome> {
    this.setControl({ pending: null, finishing: 'ROLLING_BACK' });
    this.status.message = cause;
    await this.record();
    const problems = await this.rollBack(true);
    return this.finish('FAILED', `${cause}; all traffic is back on the previous deployment${problems}`);
  }

  /**
   * Takes every step of a rollback, each bounded by its deadline, and never throws: returns
   * what could not be done, to say in the promotion's message. A failed candidate loses its
   * traffic first; a healthy one (a force-cancel) only once the previous deployment has a
   * ready replica.
   */
  private async rollBack(candidateFailed: boolean): Promise<string> {
    const problems: string[] = [];
    const attempt = async (what: string, step: () => Promise<void>): Promise<void> => {
      try {
        await step();
      } catch (error) {
        problems.push(`${what}: ${messageOf(error)}`);
      }
    };
    const previousId = this.status.previous.deployment_id;
    if (previousId && !candidateFailed && this.status.previous.replicas < 1) await attempt('waking the previous deployment', () => this.scale('previous', 1, false));
    if (this.status.percent_traffic_to_new_version > 0 || !this.routeApplied) await attempt('moving traffic back', () => this.route(0, false));
    if (previousId) await attempt('restoring the previous deployment', () => this.scale('previous', this.plan?.replicas ?? 1, false));
    await attempt('scaling the candidate down', () => this.scale('candidate', 0, false));
    this.status.step = 0;
    return problems.length > 0 ? ` (but ${problems.join('; ')})` : '';
  }

  /** Ends the rollout after a failure or interruption thrown out of a step. */
  private async recover(error: unknown): Promise<PromotionOutcome> {
    if (isFailure(error, INTERRUPTED)) {
      if (this.control.pending === 'FORCE_ROLL_FORWARD') return this.complete();
      return this.cancelAtOnce();
    }
    if (isFailure(error, ROLLOUT_FAILED)) return this.fail(error.message);
    return this.fail(`unexpected error: ${messageOf(error)}`);
  }

  /** Records the ending (audit trail first), then answers the Updates still waiting. */
  private async finish(outcome: PromotionOutcome['status'], message: string | null = null): Promise<PromotionOutcome> {
    this.status.message = message;
    this.setControl({ status: outcome, pending: null, finishing: null });
    upsertMemo({ status: outcome });
    // The audit trail is complete before the record says the promotion ended, so whoever sees
    // the end (an API action, `--follow`) also finds every entry.
    this.audit(`PROMOTION_${outcome}`, 'gantry', { message, percent_traffic_to_new_version: this.status.percent_traffic_to_new_version });
    await this.flushAudit();
    await this.record({ ended_at: iso() });
    this.endRecorded = true;
    await condition(allHandlersFinished, '1 minute');
    return { promotion_id: this.input.promotionId, status: outcome, message };
  }

  // ---- continuing as new ----

  /**
   * Whether to continue as new now: the history is long, and the promotion is quiet — no action
   * pending or waiting in an Update handler, no audit write under way (entries not yet written
   * are carried over). Waits wake up for it, so it happens between two actions however close.
   */
  private continueAsNewDue(): boolean {
    const info = workflowInfo();
    const long = info.continueAsNewSuggested || info.historyLength > HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW;
    return long && this.control.pending === null && !this.auditWriting && allHandlersFinished();
  }

  /** Continues as new with the promotion's state (nothing awaited before it, so no action can slip in). */
  private continueAsNewWithState(): Promise<never> {
    const continued: PromotionContinuation = {
      status: { ...this.status, actions: this.status.actions.slice(-ACTIONS_KEPT) },
      control: this.control,
      phase: this.phase,
      start: this.start!,
      routeApplied: this.routeApplied,
      stabilizedAt: this.stabilizedAt,
      unaudited: this.unaudited.splice(0),
    };
    // The memo names the promotion each run belongs to (the repair loop matches rows by it).
    return makeContinueAsNewFunc<typeof promotionWorkflow>({ memo: { promotion_id: this.input.promotionId, status: this.status.status } })({
      ...this.input,
      startedAt: this.startedAt,
      continued,
    });
  }

  // ---- actions ----

  /** Installs the signal, Update and query handlers; a cancellation of the workflow itself is a graceful cancel. */
  listen(root: CancellationScope): void {
    setHandler(pausePromotionSignal, (request) => void this.receive('PAUSE', request?.actor ?? SIGNAL_ACTOR));
    setHandler(resumePromotionSignal, (request) => void this.receive('RESUME', request?.actor ?? SIGNAL_ACTOR));
    setHandler(cancelPromotionSignal, (request) => void this.receive('GRACEFUL_CANCEL', request?.actor ?? SIGNAL_ACTOR));
    setHandler(forceCancelPromotionSignal, (request) => void this.receive('FORCE_CANCEL', request?.actor ?? SIGNAL_ACTOR));
    setHandler(forceRollForwardPromotionSignal, (request) => void this.receive('FORCE_ROLL_FORWARD', request?.actor ?? SIGNAL_ACTOR));
    setHandler(
      promotionActionUpdate,
      async ({ action, actor, source }) => {
        this.receive(action, actor ?? SIGNAL_ACTOR, source);
        // An effect counts once it is recorded (an ending too), so whoever hears "done" finds it in the store.
        // (Handlers run in the workflow's root scope: a cancellation of the workflow must not end the wait.)
        await CancellationScope.nonCancellable(() =>
          condition(
            () => this.endRecorded || (this.status.finishing === null && !this.isEnded() && this.recordedStatus === this.control.status && actionTookEffect(action, this.control)),
          ),
        );
        // The latest actions only: the answer stays small (the query and the audit log have them all).
        return { ...this.status, actions: this.status.actions.slice(-ACTIONS_ANSWERED) };
      },
      {
        validator: ({ action }) => {
          const refusal = actionRefusal(this.control, action);
          if (refusal) throw ApplicationFailure.create({ type: ACTION_REFUSED, message: refusal, nonRetryable: true });
        },
      },
    );
    setHandler(promotionStatusQuery, () => this.status);
    root.cancelRequested.catch(() => this.receive('GRACEFUL_CANCEL', CANCEL_ACTOR));
  }

  /** Takes an action the table allows (else records it ignored); returns the refusal, if any. */
  private receive(action: PromotionActionName, actor: string, source?: AuditSource): string | undefined {
    const refusal = actionRefusal(this.control, action);
    const record: PromotionActionRecord = { action, actor, at: iso(), outcome: refusal ? 'ignored' : 'applied', status: this.control.status };
    this.status.actions.push(record);
    if (this.status.actions.length > ACTIONS_KEPT) this.status.actions.splice(1, this.status.actions.length - ACTIONS_KEPT);
    this.audit(action, actor, { outcome: record.outcome, status: this.control.status, ...(refusal ? { reason: refusal } : {}) }, source);
    if (!refusal) this.setControl(acceptAction(this.control, action));
    return refusal;
  }

  // ---- state and record ----

  /** Makes the status the query and Updates answer follow the control state. */
  private setControl(next: Partial<PromotionControlState>): void {
    this.control = { ...this.control, ...next };
    this.status.status = this.control.status;
    this.status.pending_action = this.control.pending === 'RESUME' ? null : this.control.pending;
    this.status.paused_from = this.control.status === 'PAUSED' ? this.control.pausedFrom : null;
    this.status.finishing = this.control.finishing ?? null;
  }

  private isEnded(): boolean {
    return this.status.status === 'SUCCEEDED' || this.status.status === 'FAILED' || this.status.status === 'CANCELED';
  }

  private forcePending(): boolean {
    return this.control.pending === 'FORCE_CANCEL' || this.control.pending === 'FORCE_ROLL_FORWARD';
  }

  /** When a wait started now must end (promotion_timeout_seconds). */
  private deadline(): number {
    return Date.now() + this.input.settings.promotion_timeout_seconds * 1000;
  }

  /** Enters a status and records it. */
  private async enter(next: PromotionStatusName): Promise<void> {
    this.setControl({ status: next });
    upsertMemo({ status: next });
    await this.record();
  }

  /** Mirrors the status into the promotion's record. */
  private async record(patch: PromotionPatch = {}): Promise<void> {
    const status = this.status;
    status.updated_at = iso();
    const recording = status.status;
    await quick.recordPromotion({
      promotionId: this.input.promotionId,
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
    this.recordedStatus = recording;
  }

  // ---- the audit trail ----

  /** Queues an audit entry; the auditor writes it. */
  private audit(action: string, actor: string, details: Record<string, unknown>, source?: AuditSource): void {
    const input = this.input;
    this.unaudited.push({
      model_id: input.modelId,
      actor,
      action,
      target: input.environment,
      details: { promotion_id: input.promotionId, ...details },
      at: iso(),
      ...(source ? { source } : {}),
    });
  }

  /** Writes audit entries in the background, in order, so a long step never delays them. */
  startAuditor(): void {
    this.auditor = (async () => {
      while (this.auditing || this.unaudited.length > 0) {
        await condition(() => this.unaudited.length > 0 || !this.auditing);
        const batch = this.unaudited.splice(0);
        if (batch.length === 0) continue;
        this.auditWriting = true;
        await quick.recordAudit({ entries: batch });
        this.auditWriting = false;
      }
    })();
  }

  /** Stops the auditor once it has written every entry queued. */
  private async flushAudit(): Promise<void> {
    this.auditing = false;
    await this.auditor;
  }
}
