/** Starts, signals and queries Gantry's workflows, with their ids, search attributes and summaries in one place. */
import { Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { TASK_QUEUE, workflowIds } from '../shared/constants';
import { GANTRY_DEPLOYMENT_ID, GANTRY_ENVIRONMENT, GANTRY_MODEL_ID } from '../shared/search-attributes';
import type { DeploymentRecord, ModelRecord } from '../store/store';
import {
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  promotionStatusQuery,
  resumePromotionSignal,
  type PromotionStatus,
} from '../workflows/messages';
import type { DevelopmentUpdateInput } from '../workflows/development';
import type { PromotionWorkflowInput } from '../workflows/promotion';
import type { PromotionActionName } from '../workflows/promotion-rules';

/** A promotion workflow of this environment is already running. */
export class PromotionAlreadyRunning extends Error {
  override name = 'PromotionAlreadyRunning';
}

/** The workflow operations the API and activities need. */
export interface WorkflowsClient {
  /** Starts the deploy workflow of a new deployment (a second start of the same deployment is a no-op). */
  startDeploy(model: ModelRecord, deployment: DeploymentRecord, options: { deployTimeoutSeconds: number; promoteTo?: string; actor: string }): Promise<void>;
  /** Starts the rebuild of a development deployment at a new revision (its requirements changed). */
  startDevelopmentUpdate(model: ModelRecord, deployment: DeploymentRecord, input: DevelopmentUpdateInput): Promise<void>;
  /** Starts a promotion; throws PromotionAlreadyRunning when one of the environment is in flight. */
  startPromotion(model: ModelRecord, candidate: DeploymentRecord, input: PromotionWorkflowInput): Promise<void>;
  /** Sends an action signal to the environment's promotion. */
  signalPromotion(modelId: string, environment: string, action: PromotionActionName, actor: string): Promise<void>;
  /** The live status of the environment's promotion workflow, or undefined when there is none. */
  promotionStatus(modelId: string, environment: string): Promise<PromotionStatus | undefined>;
}

const SIGNALS = {
  PAUSE: pausePromotionSignal,
  RESUME: resumePromotionSignal,
  GRACEFUL_CANCEL: cancelPromotionSignal,
  FORCE_CANCEL: forceCancelPromotionSignal,
  FORCE_ROLL_FORWARD: forceRollForwardPromotionSignal,
} as const;

/** WorkflowsClient over a Temporal client. */
export class TemporalWorkflowsClient implements WorkflowsClient {
  constructor(private readonly client: Client) {}

  /** Starts a workflow on Gantry's task queue, tagged with its model, deployment and environment. */
  private start(
    type: string,
    workflowId: string,
    arg: unknown,
    tags: { model: ModelRecord; deploymentId: string; environment?: string },
    summary: { staticSummary: string; staticDetails?: string },
  ): Promise<unknown> {
    return this.client.workflow.start(type, {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [arg],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: GANTRY_MODEL_ID, value: tags.model.id },
        { key: GANTRY_DEPLOYMENT_ID, value: tags.deploymentId },
        ...(tags.environment ? [{ key: GANTRY_ENVIRONMENT, value: tags.environment }] : []),
      ]),
      ...summary,
    });
  }

  async startDeploy(model: ModelRecord, deployment: DeploymentRecord, options: { deployTimeoutSeconds: number; promoteTo?: string; actor: string }): Promise<void> {
    const { promoteTo } = options;
    try {
      await this.start(
        'deployWorkflow',
        workflowIds.deploy(deployment.id),
        { deploymentId: deployment.id, deployTimeoutSeconds: options.deployTimeoutSeconds, promoteTo, actor: options.actor },
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

  async startDevelopmentUpdate(model: ModelRecord, deployment: DeploymentRecord, input: DevelopmentUpdateInput): Promise<void> {
    await this.start('developmentUpdateWorkflow', workflowIds.developmentUpdate(deployment.id, input.revision), input, { model, deploymentId: deployment.id }, {
      staticSummary: `Rebuild ${model.name} / development at revision ${input.revision}`,
    });
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
      );
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) throw new PromotionAlreadyRunning(error.message);
      throw error;
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
}
