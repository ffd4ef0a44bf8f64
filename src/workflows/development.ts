/**
 * developmentUpdateWorkflow: a development deployment whose requirements changed is rebuilt
 * (a new Python environment) and its replica replaced — not zero-downtime, as for Baseten's
 * development deployments. UPDATING → ACTIVE; when the new code does not build or load, the
 * previous revision is put back and keeps serving, and the status message says why.
 */
import { ActivityFailure } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { BUILD_FAILED, REPLICAS_NOT_READY } from '../activities/failures';
import { builds, failureOfType, records, waits } from './activity-proxies';
import type { ModelConfig } from '../shared/schemas';

/** What a rebuild starts from. */
export interface DevelopmentUpdateInput {
  deploymentId: string;
  /** The revision to build (its archive is the deployment's latest upload). */
  revision: number;
  /** The revision serving now (and how many replicas it ran), put back if the new one fails. */
  previous: { revision: number; envKey: string; config: ModelConfig; desiredReplicas: number };
  deployTimeoutSeconds: number;
}

/** How a rebuild ended. */
export interface DevelopmentUpdateOutcome {
  deployment_id: string;
  revision: number;
  status: 'UPDATED' | 'FAILED';
  message?: string;
}

/** The failure's message: the typed cause when it is one, else whatever ended the activity. */
function causeOf(error: unknown, type: string): string | undefined {
  if (!(error instanceof ActivityFailure)) return undefined;
  return failureOfType(error, type)?.message ?? error.cause?.message ?? error.message;
}

/** Rebuilds a development deployment at a new revision and replaces its replica. */
export async function developmentUpdateWorkflow(input: DevelopmentUpdateInput): Promise<DevelopmentUpdateOutcome> {
  const { deploymentId, revision } = input;
  const { desiredReplicas: previousReplicas, ...previousCode } = input.previous;
  const failed = async (message: string): Promise<DevelopmentUpdateOutcome> => {
    await records.setDeploymentStatus({
      deploymentId,
      status: previousReplicas > 0 ? 'ACTIVE' : 'SCALED_TO_ZERO',
      message: `update to revision ${revision} failed, the previous code ${previousReplicas > 0 ? 'serves' : 'stays (asleep)'}: ${message}`,
    });
    return { deployment_id: deploymentId, revision, status: 'FAILED', message };
  };

  await records.setDeploymentStatus({ deploymentId, status: 'UPDATING' });
  let built: Awaited<ReturnType<Activities['buildDeployment']>>;
  try {
    built = await builds.buildDeployment({ deploymentId, revision });
  } catch (error) {
    const message = causeOf(error, BUILD_FAILED);
    if (message === undefined) throw error;
    return failed(message);
  }
  await records.applyRevision({ deploymentId, revision, envKey: built.envKey, config: built.config, desiredReplicas: 1 });
  try {
    await waits.awaitReplicasReady({ deploymentId, replicas: 1, revision, deadlineMs: Date.now() + input.deployTimeoutSeconds * 1000 });
  } catch (error) {
    const message = causeOf(error, REPLICAS_NOT_READY);
    if (message === undefined) throw error;
    await records.applyRevision({ deploymentId, ...previousCode, desiredReplicas: previousReplicas });
    return failed(message);
  }
  await records.setDeploymentStatus({ deploymentId, status: 'ACTIVE' });
  return { deployment_id: deploymentId, revision, status: 'UPDATED' };
}
