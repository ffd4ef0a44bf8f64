/** Starts Gantry's workflows with their ids, search attributes and summaries in one place. */
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { TASK_QUEUE, workflowIds } from '../shared/constants';
import { GANTRY_DEPLOYMENT_ID, GANTRY_MODEL_ID } from '../shared/search-attributes';
import type { DeploymentRecord, ModelRecord } from '../store/store';

/** The workflow operations the API needs. */
export interface WorkflowsClient {
  /** Starts the deploy workflow of a new deployment (a second start of the same deployment is a no-op). */
  startDeploy(model: ModelRecord, deployment: DeploymentRecord, deployTimeoutSeconds: number): Promise<void>;
}

/** WorkflowsClient over a Temporal client. */
export class TemporalWorkflowsClient implements WorkflowsClient {
  constructor(private readonly client: Client) {}

  async startDeploy(model: ModelRecord, deployment: DeploymentRecord, deployTimeoutSeconds: number): Promise<void> {
    try {
      await this.client.workflow.start('deployWorkflow', {
        taskQueue: TASK_QUEUE,
        workflowId: workflowIds.deploy(deployment.id),
        args: [{ deploymentId: deployment.id, deployTimeoutSeconds }],
        typedSearchAttributes: new TypedSearchAttributes([
          { key: GANTRY_MODEL_ID, value: model.id },
          { key: GANTRY_DEPLOYMENT_ID, value: deployment.id },
        ]),
        staticSummary: `Deploy ${model.name} / ${deployment.name}`,
        staticDetails: `model ${model.id}, deployment ${deployment.id}`,
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  }
}
