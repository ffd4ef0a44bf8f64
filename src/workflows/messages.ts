/** Signals and queries of Gantry's workflows, shared by workflows, the API and the CLI. */
import { defineQuery } from '@temporalio/workflow';
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
