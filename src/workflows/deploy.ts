/**
 * deployWorkflow (DESIGN §3): BUILDING → DEPLOYING → ACTIVE, or BUILD_FAILED / DEPLOY_FAILED
 * with the cause in the deployment's status message and log. The first published
 * deployment of a model then becomes the current deployment of its production environment.
 */
import { ActivityFailure, setHandler } from '@temporalio/workflow';
import { BUILD_FAILED, REPLICAS_NOT_READY } from '../activities/failures';
import { builds, failureOfType, records, waits } from './activity-proxies';
import { PRODUCTION } from '../shared/constants';
import type { DeploymentStatus } from '../shared/schemas';
import { deployProgressQuery, type DeployProgress } from './messages';

/** What starts a deploy. */
export interface DeployWorkflowInput {
  deploymentId: string;
  /** How long replicas may take to become healthy before the deploy fails. */
  deployTimeoutSeconds: number;
  /** Promote the deployment to this environment once it is ACTIVE. */
  promoteTo?: string;
  /** Who pushed (the API key's name), for the promotion's audit trail. */
  actor?: string;
}

/** How a deploy ended. */
export interface DeployOutcome {
  deployment_id: string;
  status: Extract<DeploymentStatus, 'ACTIVE' | 'BUILD_FAILED' | 'DEPLOY_FAILED'>;
  message?: string;
  /** Whether the deployment became production's current deployment. */
  became_production?: boolean;
  /** The promotion the push asked for: its id, or why it was refused. */
  promotion?: { promotion_id?: string; refused?: string };
}

/** Builds a pushed deployment, brings its replicas up and marks it ACTIVE, or failed with the cause. */
export async function deployWorkflow(input: DeployWorkflowInput): Promise<DeployOutcome> {
  const progress: DeployProgress = { deployment_id: input.deploymentId, status: 'BUILDING' };
  setHandler(deployProgressQuery, () => progress);

  const enter = async (status: DeploymentStatus, message?: string): Promise<void> => {
    progress.status = status;
    progress.message = message;
    await records.setDeploymentStatus({ deploymentId: input.deploymentId, status, message });
  };

  await enter('BUILDING');
  try {
    await builds.buildDeployment({ deploymentId: input.deploymentId });
  } catch (error) {
    // A package problem says what to fix; anything else failed every attempt and is said as it is.
    if (!(error instanceof ActivityFailure)) throw error;
    const message = failureOfType(error, BUILD_FAILED)?.message ?? `the build could not run: ${error.cause?.message ?? error.message}`;
    await enter('BUILD_FAILED', message);
    return { deployment_id: input.deploymentId, status: 'BUILD_FAILED', message };
  }

  await enter('DEPLOYING');
  const replicas = await records.scaleToMinReplicas({ deploymentId: input.deploymentId });
  try {
    await waits.awaitReplicasReady({
      deploymentId: input.deploymentId,
      replicas,
      deadlineMs: Date.now() + input.deployTimeoutSeconds * 1000,
    });
  } catch (error) {
    const notReady = failureOfType(error, REPLICAS_NOT_READY);
    if (!notReady) throw error;
    await records.scaleDeployment({ deploymentId: input.deploymentId, replicas: 0 });
    await enter('DEPLOY_FAILED', notReady.message);
    return { deployment_id: input.deploymentId, status: 'DEPLOY_FAILED', message: notReady.message };
  }

  // The first deployment of a model serves production at once; the route is verified applied
  // before the deployment is called ACTIVE, so that "ACTIVE" means "answers on production".
  const adoption = await records.adoptIfNoCurrentDeployment({ deploymentId: input.deploymentId, environment: PRODUCTION });
  if (adoption.adopted) {
    await waits.awaitRouteApplied({ modelId: adoption.modelId, environment: PRODUCTION, generation: adoption.generation });
  }
  await enter('ACTIVE');
  const outcome: DeployOutcome = { deployment_id: input.deploymentId, status: 'ACTIVE', became_production: adoption.adopted };
  if (input.promoteTo && !(adoption.adopted && input.promoteTo === PRODUCTION)) {
    const started = await records.promoteAfterDeploy({ deploymentId: input.deploymentId, environment: input.promoteTo, actor: input.actor ?? 'gantry' });
    outcome.promotion = { promotion_id: started.promotionId, refused: started.refused };
  }
  return outcome;
}
