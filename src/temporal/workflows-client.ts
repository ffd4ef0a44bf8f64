/** Starts, updates, signals, queries and describes Gantry's workflows, with their ids, search attributes and summaries in one place. */
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowExecutionStatusName } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, TypedSearchAttributes } from '@temporalio/common';
import { TASK_QUEUE, workflowIds } from '../shared/constants';
import { GANTRY_DEPLOYMENT_ID, GANTRY_ENVIRONMENT, GANTRY_MODEL_ID } from '../shared/search-attributes';
import type { ApiClientSource, AuditSource } from '../shared/views';
import type { DeploymentRecord, ModelRecord } from '../store/store';
import {
  ACTION_REFUSED,
  asyncCancelSignal,
  asyncDispatchedSignal,
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  promotionActionUpdate,
  promotionStatusQuery,
  resumePromotionSignal,
  type PromotionStatus,
} from '../contracts/messages';
import { actionTookEffect } from '../contracts/promotion-rules';
import type { AsyncPredictionInput, DevelopmentUpdateInput, DevelopmentUpdateOutcome, PromotionWorkflowInput } from '../contracts/workflows';
import type { PromotionActionName } from '../shared/promotion-status';

/** A promotion workflow of this environment is already running. */
export class PromotionAlreadyRunning extends Error {
  override name = 'PromotionAlreadyRunning';
}

/** An update of this development deployment is already running. */
export class DevelopmentUpdateAlreadyRunning extends Error {
  override name = 'DevelopmentUpdateAlreadyRunning';
}

/** The promotion refused the action (the state × action table); the message is the reason. */
export class PromotionActionRefused extends Error {
  override name = 'PromotionActionRefused';
}

/** What an action sent as an Update came to. */
export interface PromotionActionResult {
  /** Whether it took effect within the wait (else it is accepted and still pending). */
  done: boolean;
  /** The promotion's status when it took effect. */
  status?: PromotionStatus;
}

/** A workflow execution as the repair loop needs to see it: the latest run of an id. */
export interface WorkflowDescription {
  status: WorkflowExecutionStatusName;
  runId: string;
  startTime: Date;
  closeTime?: Date;
  memo: Record<string, unknown>;
}

/** The workflow operations the API, activities and the repair loop need. */
export interface WorkflowsClient {
  /** Starts the deploy workflow of a new deployment (a second start while one runs is a no-op). */
  startDeploy(
    model: ModelRecord,
    deployment: DeploymentRecord,
    options: { deployTimeoutSeconds: number; promoteTo?: string; actor: string; actorSource?: ApiClientSource },
  ): Promise<void>;
  /** Starts an update of a development deployment (throws DevelopmentUpdateAlreadyRunning while one runs) and returns its outcome once it ends. */
  startDevelopmentUpdate(model: ModelRecord, deployment: DeploymentRecord, input: DevelopmentUpdateInput): Promise<{ result: () => Promise<DevelopmentUpdateOutcome> }>;
  /** Starts a promotion; throws PromotionAlreadyRunning when one of the environment is in flight. */
  startPromotion(model: ModelRecord, candidate: DeploymentRecord, input: PromotionWorkflowInput): Promise<void>;
  /**
   * Sends an action to the environment's promotion as an Update and waits up to `waitMs` for it
   * to take effect; throws PromotionActionRefused with the reason when the promotion refuses it.
   */
  actOnPromotion(modelId: string, environment: string, action: PromotionActionName, actor: string, waitMs: number, source?: AuditSource): Promise<PromotionActionResult>;
  /** Sends an action signal to the environment's promotion (for promotions started before actions were Updates). */
  signalPromotion(modelId: string, environment: string, action: PromotionActionName, actor: string): Promise<void>;
  /** The live status of the environment's promotion workflow, or undefined when there is none. */
  promotionStatus(modelId: string, environment: string): Promise<PromotionStatus | undefined>;
  /** The latest run of a workflow id, or undefined when there has never been one. */
  describe(workflowId: string): Promise<WorkflowDescription | undefined>;
  /** The input the latest run of a workflow id was started with, and how it was terminated if it was. */
  startInputOf(workflowId: string): Promise<{ input: unknown; terminationReason?: string } | undefined>;
}

/** Starts and signals async prediction workflows (the API and the dispatcher). */
export interface AsyncPredictionsClient {
  /** Starts the workflow of an accepted async request (`async:<request_id>`), tagged with its model and deployment. */
  startAsyncPrediction(model: ModelRecord, deploymentId: string, input: AsyncPredictionInput, summary: string): Promise<void>;
  /** Tells a request's workflow it was dispatched or canceled; a workflow that is gone is ignored. */
  signalAsyncPrediction(requestId: string, signal: 'dispatched' | 'cancel'): Promise<void>;
}

const SIGNALS = {
  PAUSE: pausePromotionSignal,
  RESUME: resumePromotionSignal,
  GRACEFUL_CANCEL: cancelPromotionSignal,
  FORCE_CANCEL: forceCancelPromotionSignal,
  FORCE_ROLL_FORWARD: forceRollForwardPromotionSignal,
} as const;

/** How long an Update may wait to be accepted (a worker must pick it up) before the caller hears Temporal is not answering. */
const UPDATE_ACCEPT_TIMEOUT_MS = 15_000;

/** WorkflowsClient over a Temporal client. */
export class TemporalWorkflowsClient implements WorkflowsClient, AsyncPredictionsClient {
  constructor(private readonly client: Client) {}

  /** Starts a workflow on Gantry's task queue, tagged with its model, deployment and environment. */
  private start(
    type: string,
    workflowId: string,
    arg: unknown,
    tags: { model: ModelRecord; deploymentId: string; environment?: string },
    summary: { staticSummary: string; staticDetails?: string },
    memo?: Record<string, unknown>,
  ) {
    return this.client.workflow.start(type, {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [arg],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: GANTRY_MODEL_ID, value: tags.model.id },
        { key: GANTRY_DEPLOYMENT_ID, value: tags.deploymentId },
        ...(tags.environment ? [{ key: GANTRY_ENVIRONMENT, value: tags.environment }] : []),
      ]),
      memo,
      ...summary,
    });
  }

  async startAsyncPrediction(model: ModelRecord, deploymentId: string, input: AsyncPredictionInput, summary: string): Promise<void> {
    await this.start(
      'asyncPredictionWorkflow',
      workflowIds.asyncPrediction(input.requestId),
      input,
      { model, deploymentId },
      { staticSummary: summary },
      { request_id: input.requestId },
    );
  }

  async signalAsyncPrediction(requestId: string, signal: 'dispatched' | 'cancel'): Promise<void> {
    try {
      await this.client.workflow.getHandle(workflowIds.asyncPrediction(requestId)).signal(signal === 'dispatched' ? asyncDispatchedSignal : asyncCancelSignal);
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
  }

  async startDeploy(
    model: ModelRecord,
    deployment: DeploymentRecord,
    options: { deployTimeoutSeconds: number; promoteTo?: string; actor: string; actorSource?: ApiClientSource },
  ): Promise<void> {
    const { promoteTo } = options;
    try {
      await this.start(
        'deployWorkflow',
        workflowIds.deploy(deployment.id),
        {
          deploymentId: deployment.id,
          deployTimeoutSeconds: options.deployTimeoutSeconds,
          promoteTo,
          actor: options.actor,
          ...(options.actorSource ? { actorSource: options.actorSource } : {}),
        },
        { model, deploymentId: deployment.id },
        {
          staticSummary: `Deploy ${model.name} / ${deployment.name}${promoteTo ? `, then promote to ${promoteTo}` : ''}`,
          staticDetails: `model ${model.id}, deployment ${deployment.id}`,
        },
      );
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  }

  async startDevelopmentUpdate(model: ModelRecord, deployment: DeploymentRecord, input: DevelopmentUpdateInput): Promise<{ result: () => Promise<DevelopmentUpdateOutcome> }> {
    try {
      const handle = await this.start(
        'developmentUpdateWorkflow',
        workflowIds.developmentUpdate(deployment.id),
        input,
        { model, deploymentId: deployment.id },
        { staticSummary: `${input.mode === 'reload' ? 'Reload' : 'Rebuild'} ${model.name} / development at revision ${input.revision}` },
        { revision: input.revision },
      );
      return { result: () => handle.result() as Promise<DevelopmentUpdateOutcome> };
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) throw new DevelopmentUpdateAlreadyRunning(error.message);
      throw error;
    }
  }

  async startPromotion(model: ModelRecord, candidate: DeploymentRecord, input: PromotionWorkflowInput): Promise<void> {
    try {
      await this.start(
        'promotionWorkflow',
        workflowIds.promotion(model.id, input.environment),
        input,
        { model, deploymentId: candidate.id, environment: input.environment },
        {
          staticSummary: `Promote ${model.name} / ${candidate.name} → ${input.environment}`,
          staticDetails: `promotion ${input.promotionId}: ${input.settings.rolling_deploy ? 'rolling' : 'instant'}, asked by ${input.actor}`,
        },
        { promotion_id: input.promotionId },
      );
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) throw new PromotionAlreadyRunning(error.message);
      throw error;
    }
  }

  async actOnPromotion(modelId: string, environment: string, action: PromotionActionName, actor: string, waitMs: number, source?: AuditSource): Promise<PromotionActionResult> {
    const handle = this.client.workflow.getHandle(workflowIds.promotion(modelId, environment));
    const update = await this.client.withDeadline(Date.now() + UPDATE_ACCEPT_TIMEOUT_MS, () =>
      handle.startUpdate(promotionActionUpdate, { args: [{ action, actor, ...(source ? { source } : {}) }], waitForStage: 'ACCEPTED' }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)));
    try {
      const status = await Promise.race([update.result(), timeout]);
      return status ? { done: true, status } : { done: false };
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure && error.cause.type === ACTION_REFUSED) {
        throw new PromotionActionRefused(error.cause.message);
      }
      // The run that took the action closed (it continued as new, or ended) before its outcome was
      // read: the action was accepted there; whether it took effect, the status of the latest run says.
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      const status = await this.promotionStatus(modelId, environment);
      const control = status && { status: status.status, pending: status.pending_action, pausedFrom: status.paused_from, finishing: status.finishing };
      return control && actionTookEffect(action, control) ? { done: true, status } : { done: false, status };
    } finally {
      clearTimeout(timer);
    }
  }

  async signalPromotion(modelId: string, environment: string, action: PromotionActionName, actor: string): Promise<void> {
    await this.client.workflow.getHandle(workflowIds.promotion(modelId, environment)).signal(SIGNALS[action], { actor });
  }

  async promotionStatus(modelId: string, environment: string): Promise<PromotionStatus | undefined> {
    try {
      return await this.client.workflow.getHandle(workflowIds.promotion(modelId, environment)).query(promotionStatusQuery);
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  }

  async describe(workflowId: string): Promise<WorkflowDescription | undefined> {
    try {
      const description = await this.client.workflow.getHandle(workflowId).describe();
      return {
        status: description.status.name,
        runId: description.runId,
        startTime: description.startTime,
        closeTime: description.closeTime,
        memo: description.memo ?? {},
      };
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  }

  async startInputOf(workflowId: string): Promise<{ input: unknown; terminationReason?: string } | undefined> {
    const history = await this.client.workflow
      .getHandle(workflowId)
      .fetchHistory()
      .catch((error: unknown) => {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw error;
      });
    if (!history) return undefined;
    const events = history.events ?? [];
    const payload = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const terminated = events.at(-1)?.workflowExecutionTerminatedEventAttributes;
    return {
      input: payload ? defaultPayloadConverter.fromPayload(payload) : undefined,
      terminationReason: terminated ? terminated.reason || 'no reason given' : undefined,
    };
  }
}
