/** Signals and queries of Gantry's workflows, shared by workflows, the API and the CLI. */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { DeploymentStatus } from '../shared/schemas';

/** Where a deploy workflow is. */
export interface DeployProgress {
  deployment_id: string;
  status: DeploymentStatus;
  /** Why it failed, when it did. */
  message?: string;
}

/** The progress of a deploy workflow. */
export const deployProgressQuery = defineQuery<DeployProgress>('deployProgress');

/** Every status a promotion can be in (DESIGN §1). */
export const promotionStatuses = ['RELEASING', 'RAMPING_UP', 'PAUSED', 'RAMPING_DOWN', 'SUCCEEDED', 'FAILED', 'CANCELED'] as const;
/** A promotion's status. */
export type PromotionStatusName = (typeof promotionStatuses)[number];
/** The statuses a promotion ends in. */
export const TERMINAL_PROMOTION_STATUSES: readonly PromotionStatusName[] = ['SUCCEEDED', 'FAILED', 'CANCELED'];

/** Who asked for an action. Signals sent without one (the Temporal UI, `temporal workflow signal`) are attributed to `temporal`. */
export interface ActionRequest {
  actor?: string;
}

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

/** One side of a promotion. */
export interface PromotionSide {
  deployment_id: string | null;
  /** Replicas the promotion has asked this deployment to run. */
  replicas: number;
}

/** What the promotionStatus query answers. */
export interface PromotionStatus {
  promotion_id: string;
  model_id: string;
  environment: string;
  status: PromotionStatusName;
  /** Steps completed so far (counts down again while ramping down). */
  step: number;
  total_steps: number;
  percent_traffic_to_new_version: number;
  candidate: PromotionSide;
  previous: PromotionSide;
  /** An action received and waiting for the step under way to finish. */
  pending_action: Exclude<PromotionActionRecord['action'], 'PROMOTE'> | null;
  /** The phase a PAUSED promotion returns to on resume. */
  paused_from: 'RAMPING_UP' | 'RAMPING_DOWN' | null;
  /** Why it failed, when it did. */
  message: string | null;
  started_at: string;
  updated_at: string;
  actions: PromotionActionRecord[];
}

/** Pause at the next step boundary; the traffic split stays where it is. */
export const pausePromotionSignal = defineSignal<[ActionRequest?]>('pausePromotion');
/** Continue a paused promotion where it stopped. */
export const resumePromotionSignal = defineSignal<[ActionRequest?]>('resumePromotion');
/** Graceful cancel: ramp down step by step (RAMPING_DOWN), then CANCELED. */
export const cancelPromotionSignal = defineSignal<[ActionRequest?]>('cancelPromotion');
/** Route all traffic back to the previous deployment at once, then restore replicas: CANCELED. */
export const forceCancelPromotionSignal = defineSignal<[ActionRequest?]>('forceCancelPromotion');
/** Candidate to full size and all traffic at once, then clean up the previous: SUCCEEDED. */
export const forceRollForwardPromotionSignal = defineSignal<[ActionRequest?]>('forceRollForwardPromotion');

/** The status of a promotion workflow. */
export const promotionStatusQuery = defineQuery<PromotionStatus>('promotionStatus');
