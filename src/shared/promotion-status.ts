/** A promotion's statuses and the actions taken on it: the vocabulary of the workflow, the API and the dashboard. */

/** Every status a promotion can be in (docs/promotion-states.md). */
export const promotionStatuses = ['RELEASING', 'RAMPING_UP', 'PAUSED', 'RAMPING_DOWN', 'SUCCEEDED', 'FAILED', 'CANCELED'] as const;
/** A promotion's status. */
export type PromotionStatusName = (typeof promotionStatuses)[number];
/** The statuses a promotion ends in. */
export const TERMINAL_PROMOTION_STATUSES: readonly PromotionStatusName[] = ['SUCCEEDED', 'FAILED', 'CANCELED'];

/** One action taken on a promotion, as the status lists it. */
export interface PromotionActionRecord {
  action: 'PROMOTE' | 'PAUSE' | 'RESUME' | 'GRACEFUL_CANCEL' | 'FORCE_CANCEL' | 'FORCE_ROLL_FORWARD';
  actor: string;
  at: string;
  /** Whether the workflow applied it (`applied`) or it did not apply in the state it arrived in (`ignored`). */
  outcome: 'applied' | 'ignored';
  /** The status it arrived in. */
  status: PromotionStatusName;
}

/** An action a user can send, as the audit log names it. */
export type PromotionActionName = Exclude<PromotionActionRecord['action'], 'PROMOTE'>;
