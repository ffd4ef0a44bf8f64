/**
 * What a promotion does next, decided at every step boundary from where it stands and the
 * action waiting: the promotion workflow's controller logic (in the manner of Argo Rollouts'
 * reconcile), pure and deterministic, so that it can be tested as a table of states and
 * decisions. The workflow (src/workflows/promotion.ts) carries each decision out.
 */
import type { PromotionActionName, PromotionStatusName } from '../shared/promotion-status';

/** Where a rolling promotion stands at a step boundary. */
export interface PromotionLoopState {
  /** RAMPING_UP, RAMPING_DOWN or PAUSED. */
  status: PromotionStatusName;
  /** The direction it moves in (and returns to after a pause). */
  phase: 'RAMPING_UP' | 'RAMPING_DOWN';
  /** Steps of the plan taken so far. */
  step: number;
  /** Steps in the plan. */
  totalSteps: number;
  /** What is left of the stabilization wait after the last step (ms; 0 or less: none). */
  stabilizingMs: number;
  /** Whether the history is long enough, and the promotion quiet enough, to continue as new now. */
  continueAsNewDue: boolean;
}

/** The next thing a promotion does. */
export type PromotionDecision =
  /** Start a new run with the promotion's state (its history has grown long). */
  | { kind: 'CONTINUE_AS_NEW' }
  /** Candidate to full size and all traffic, then clean up the previous deployment: SUCCEEDED. */
  | { kind: 'COMPLETE'; because: 'FORCE_ROLL_FORWARD' | 'ALL_STEPS_TAKEN' }
  /** All traffic back to the previous deployment at once, then restore replicas: CANCELED. */
  | { kind: 'CANCEL_AT_ONCE' }
  /** Leave PAUSED for the phase it paused in. */
  | { kind: 'RESUME' }
  /** Turn back: ramp down step by step (a graceful cancel). */
  | { kind: 'START_RAMPING_DOWN' }
  /** Stop at this step boundary: PAUSED. */
  | { kind: 'PAUSE' }
  /** Paused: wait for an action (or for the time to continue as new). */
  | { kind: 'WAIT_FOR_ACTION' }
  /** Let the last step settle before the next one, unless an action comes first. */
  | { kind: 'STABILIZE'; ms: number }
  /** Take the next step of the plan. */
  | { kind: 'STEP_UP' }
  /** Undo the last step taken. */
  | { kind: 'STEP_DOWN' }
  /** Every step is undone: scale the candidate to zero and end CANCELED. */
  | { kind: 'END_RAMPED_DOWN' };

/**
 * The next thing to do, strongest first: continue as new when due (it carries the pending
 * action over); a force action; while paused, a resume or a cancel, else waiting; a graceful
 * cancel while ramping up; a pause; then the rollout itself: the rest of the stabilization
 * wait, the next step or the end, in the phase's direction.
 */
export function decide(state: PromotionLoopState, pending: PromotionActionName | null): PromotionDecision {
  if (state.continueAsNewDue) return { kind: 'CONTINUE_AS_NEW' };
  if (pending === 'FORCE_ROLL_FORWARD') return { kind: 'COMPLETE', because: 'FORCE_ROLL_FORWARD' };
  if (pending === 'FORCE_CANCEL') return { kind: 'CANCEL_AT_ONCE' };
  if (state.status === 'PAUSED') {
    if (pending === 'RESUME') return { kind: 'RESUME' };
    if (pending === 'GRACEFUL_CANCEL') return { kind: 'START_RAMPING_DOWN' };
    return { kind: 'WAIT_FOR_ACTION' };
  }
  if (pending === 'GRACEFUL_CANCEL' && state.phase === 'RAMPING_UP') return { kind: 'START_RAMPING_DOWN' };
  if (pending === 'PAUSE') return { kind: 'PAUSE' };
  if (state.phase === 'RAMPING_UP') {
    if (state.stabilizingMs > 0) return { kind: 'STABILIZE', ms: state.stabilizingMs };
    if (state.step >= state.totalSteps) return { kind: 'COMPLETE', because: 'ALL_STEPS_TAKEN' };
    return { kind: 'STEP_UP' };
  }
  if (state.step <= 0) return { kind: 'END_RAMPED_DOWN' };
  return { kind: 'STEP_DOWN' };
}
