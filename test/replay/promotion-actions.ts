/** How the history recorder sends a control action to a running promotion. */
import type { WorkflowHandle } from '@temporalio/client';
import {
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  resumePromotionSignal,
} from '../../src/workflows/messages';
import type { PromotionActionName } from '../../src/workflows/promotion-rules';

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

const SIGNALS = {
  pause: pausePromotionSignal,
  resume: resumePromotionSignal,
  cancel: cancelPromotionSignal,
  force_cancel: forceCancelPromotionSignal,
  force_roll_forward: forceRollForwardPromotionSignal,
} as const;

/** Sends the action as its signal, attributed to `actor`. */
export async function sendAction(handle: WorkflowHandle, action: PromotionActionKey, actor: string): Promise<void> {
  await handle.signal(SIGNALS[action], { actor });
}
