/**
 * deployWorkflow (DESIGN §3): BUILDING → DEPLOYING → ACTIVE, or BUILD_FAILED / DEPLOY_FAILED
 * with the cause in the deployment's status message and log. The first published
 * deployment of a model then becomes the current deployment of its production environment.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { BUILD_FAILED, NON_RETRYABLE_FAILURES, REPLICAS_NOT_READY } from '../activities/failures';
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

const records = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

const builds = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

const waits = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** The ApplicationFailure of the given type behind an activity failure, if that is what it is. */
function failureOfType(error: unknown, type: string): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === type) {
    return error.cause;
  }
  return undefined;
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
