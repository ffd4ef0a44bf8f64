/** How the history recorder and the workflow tests send a control action to a running promotion. */
import type { WorkflowHandle } from '@temporalio/client';
import {
  promotionActionUpdate,
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  resumePromotionSignal,
} from '../../src/contracts/messages';
import type { PromotionActionName } from '../../src/shared/promotion-status';

/** The recorder's action keys → the audit log's names. */
export const PROMOTION_ACTIONS = {
  pause: 'PAUSE',
  resume: 'RESUME',
  cancel: 'GRACEFUL_CANCEL',
  force_cancel: 'FORCE_CANCEL',
  force_roll_forward: 'FORCE_ROLL_FORWARD',
} as const satisfies Record<string, PromotionActionName>;

/** An action the recorder can send. */
export type PromotionActionKey = keyof typeof PROMOTION_ACTIONS;

/** The signal of each action, as the Temporal UI sends it. */
export const PROMOTION_SIGNALS = {
  pause: pausePromotionSignal,
  resume: resumePromotionSignal,
  cancel: cancelPromotionSignal,
  force_cancel: forceCancelPromotionSignal,
  force_roll_forward: forceRollForwardPromotionSignal,
} as const;

/**
 * Sends the action, attributed to `actor`: as the API does (the `promotionAction` Update, not
 * waiting for its effect: the recorder follows the status), or as the Temporal UI does (its signal).
 */
export async function sendAction(handle: WorkflowHandle, action: PromotionActionKey, actor: string, via: 'update' | 'signal' = 'update'): Promise<void> {
  if (via === 'signal') await handle.signal(PROMOTION_SIGNALS[action], { actor });
  else await handle.startUpdate(promotionActionUpdate, { args: [{ action: PROMOTION_ACTIONS[action], actor }], waitForStage: 'ACCEPTED' });
}
