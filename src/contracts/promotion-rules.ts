/**
 * Which action applies in which promotion state: the state × signal table of
 * docs/promotion-states.md as code. Pure and deterministic, shared by the workflow (which
 * applies or ignores each signal) and the API (which answers 409 when an action does not apply).
 */
import { TERMINAL_PROMOTION_STATUSES, type PromotionActionName, type PromotionStatusName } from '../shared/promotion-status';
import type { PromotionFinishing } from './messages';

/** What decides whether an action applies. */
export interface PromotionControlState {
  status: PromotionStatusName;
  /** The action received and waiting for the step under way (at most one). */
  pending: PromotionActionName | null;
  /** The phase a PAUSED promotion returns to. */
  pausedFrom: 'RAMPING_UP' | 'RAMPING_DOWN' | null;
  /** Set while it completes or rolls back (absent in promotions started before version 2). */
  finishing?: PromotionFinishing | null;
}

const FORCED: readonly (PromotionActionName | null)[] = ['FORCE_CANCEL', 'FORCE_ROLL_FORWARD'];

/** Why an action does not apply in this state, or undefined when it does. */
export function actionRefusal(state: PromotionControlState, action: PromotionActionName): string | undefined {
  if (TERMINAL_PROMOTION_STATUSES.includes(state.status)) return `the promotion has already ${state.status}`;
  if (state.finishing === 'COMPLETING') return 'the promotion is completing: all traffic is moving to the candidate';
  if (state.finishing === 'ROLLING_BACK') return 'the promotion is rolling back: all traffic is moving back to the previous deployment';
  if (FORCED.includes(state.pending)) return `a ${state.pending} is already under way`;
  switch (action) {
    case 'PAUSE':
      if (state.status === 'PAUSED') return 'the promotion is already paused';
      if (state.pending === 'PAUSE') return 'a pause is already pending';
      if (state.pending === 'GRACEFUL_CANCEL') return 'a cancel is pending';
      return undefined;
    case 'RESUME':
      if (state.status === 'PAUSED' || state.pending === 'PAUSE') return undefined;
      return `the promotion is ${state.status}, not paused`;
    case 'GRACEFUL_CANCEL':
      if (state.status === 'RAMPING_DOWN' || (state.status === 'PAUSED' && state.pausedFrom === 'RAMPING_DOWN')) {
        return 'the promotion is already being cancelled';
      }
      if (state.pending === 'GRACEFUL_CANCEL') return 'a cancel is already pending';
      return undefined;
    case 'FORCE_CANCEL':
    case 'FORCE_ROLL_FORWARD':
      return undefined;
  }
}

/** The state after an action is accepted (before the workflow acts on it at a step boundary). */
export function acceptAction(state: PromotionControlState, action: PromotionActionName): PromotionControlState {
  if (action === 'RESUME') return { ...state, pending: state.status === 'PAUSED' ? 'RESUME' : null };
  return { ...state, pending: action };
}

/**
 * Whether an accepted action has taken effect in this state: a pause once PAUSED, a resume once
 * no longer paused (or the pending pause withdrawn), a cancel once RAMPING_DOWN, and any action
 * once the promotion has ended.
 */
export function actionTookEffect(action: PromotionActionName, state: PromotionControlState): boolean {
  if (TERMINAL_PROMOTION_STATUSES.includes(state.status)) return true;
  switch (action) {
    case 'PAUSE':
      return state.status === 'PAUSED';
    case 'RESUME':
      return state.status !== 'PAUSED' && state.pending !== 'PAUSE' && state.pending !== 'RESUME';
    case 'GRACEFUL_CANCEL':
      return state.status === 'RAMPING_DOWN';
    case 'FORCE_CANCEL':
    case 'FORCE_ROLL_FORWARD':
      return false;
  }
}
