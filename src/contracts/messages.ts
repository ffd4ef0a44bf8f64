/**
 * Signals, queries and Updates of Gantry's workflows, with the types they carry: the contract
 * between the workflows and whoever talks to them (the API, the repair loop, the Temporal UI).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { PromotionActionName, PromotionActionRecord, PromotionStatusName } from '../shared/promotion-status';
import type { DeploymentStatus } from '../shared/schemas';
import type { AuditSource } from '../shared/views';

/** Where a deploy workflow is. */
export interface DeployProgress {
  deployment_id: string;
  status: DeploymentStatus;
  /** Why it failed, when it did. */
  message?: string;
}

/** The progress of a deploy workflow. */
export const deployProgressQuery = defineQuery<DeployProgress>('deployProgress');

/** Who asked for an action. Signals sent without one (the Temporal UI, `temporal workflow signal`) are attributed to SIGNAL_ACTOR. */
export interface ActionRequest {
  actor?: string;
}

/** The actor named for signals that carry none (the Temporal UI, `temporal workflow signal`). */
export const SIGNAL_ACTOR = 'temporal (signal)';
/** The actor named for a cancellation of the workflow itself (`temporal workflow cancel`, the UI's Cancel). */
export const CANCEL_ACTOR = 'temporal (cancel)';

/** An action sent as a Workflow Update: which one, and who asked. */
export interface PromotionActionRequest extends ActionRequest {
  action: PromotionActionName;
  /** How the action was sent (the API, the CLI, the dashboard), for the audit log. */
  source?: AuditSource;
}

/** The ApplicationFailure type of an action the state × action table refuses (the Update's validator). */
export const ACTION_REFUSED = 'ActionRefused';

/** What a promotion is doing when it can no longer take actions: moving all traffic one way, then ending. */
export type PromotionFinishing = 'COMPLETING' | 'ROLLING_BACK';

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
  /** Set while the promotion completes or rolls back: every action is refused then. Absent before version 2. */
  finishing?: PromotionFinishing | null;
  /** 2 for promotions that take actions as Updates; absent for those started before (signals only). */
  version?: 2;
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

/**
 * Pause, resume, cancel, force-cancel or force-roll-forward, checked against the state × action
 * table before it is accepted (a refusal is an ApplicationFailure of type ACTION_REFUSED with the
 * reason, and changes nothing); answers the promotion's status once the action has taken effect.
 */
export const promotionActionUpdate = defineUpdate<PromotionStatus, [PromotionActionRequest]>('promotionAction');

/** The status of a promotion workflow. */
export const promotionStatusQuery = defineQuery<PromotionStatus>('promotionStatus');

/** Sent by the dispatcher once the async request's record is IN_PROGRESS: call the model now. */
export const asyncDispatchedSignal = defineSignal('dispatched');
/** Sent by the API once it canceled the queued async request (from the Temporal UI, it cancels it if still queued). */
export const asyncCancelSignal = defineSignal('cancel');
