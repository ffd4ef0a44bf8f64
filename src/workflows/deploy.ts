/**
 * deployWorkflow (docs/architecture.md §3): BUILDING → DEPLOYING → ACTIVE, or BUILD_FAILED / DEPLOY_FAILED
 * with the cause in the deployment's status message and log. The first published
 * deployment of a model then becomes the current deployment of its production environment.
 * A cancellation or an unexpected failure still leaves the record failed with the cause.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, setHandler } from '@temporalio/workflow';
import { BUILD_FAILED, DEPLOY_INTERRUPTED, DEPLOYMENT_NOT_FOUND, REPLICAS_NOT_READY, ROUTE_NOT_APPLIED } from '../contracts/failures';
import type { DeployOutcome, DeployWorkflowInput } from '../contracts/workflows';
import { builds, failureOfType, records, waits } from './activity-proxies';
import { PRODUCTION } from '../shared/constants';
import type { DeploymentStatus } from '../shared/schemas';
import { deployProgressQuery, type DeployProgress } from '../contracts/messages';

/** Builds a pushed deployment, brings its replicas up and marks it ACTIVE, or failed with the cause. */
export async function deployWorkflow(input: DeployWorkflowInput): Promise<DeployOutcome> {
  const progress: DeployProgress = { deployment_id: input.deploymentId, status: 'BUILDING' };
  setHandler(deployProgressQuery, () => progress);
  try {
    return await deploy(input, progress);
  } catch (error) {
    // Cancelled (`temporal workflow cancel`) or failed unexpectedly: the record says so before
    // the workflow ends, wherever it was, and nothing can cancel that.
    const cancelled = isCancellation(error);
    const cause = cancelled ? 'the deploy was cancelled' : `the deploy failed unexpectedly: ${causeOf(error)}`;
    await CancellationScope.nonCancellable(() => recordInterruption(input.deploymentId, progress, cause));
    if (cancelled) throw error;
    throw ApplicationFailure.create({ type: DEPLOY_INTERRUPTED, message: cause, nonRetryable: true });
  }
}

/** The message of an error or of the activity failure's cause. */
function causeOf(error: unknown): string {
  if (error instanceof ActivityFailure) return error.cause?.message ?? error.message;
  return (error as Error).message ?? String(error);
}

/** Marks a deploy that ended without an outcome as failed where it stood (a deployment that was already ACTIVE stays so). */
async function recordInterruption(deploymentId: string, progress: DeployProgress, cause: string): Promise<void> {
  if (progress.status === 'ACTIVE') return;
  try {
    if (progress.status === 'DEPLOYING') await records.scaleDeployment({ deploymentId, replicas: 0 });
    const failed = progress.status === 'BUILDING' ? 'BUILD_FAILED' : 'DEPLOY_FAILED';
    progress.status = failed;
    progress.message = cause;
    await records.setDeploymentStatus({ deploymentId, status: failed, message: cause });
  } catch (error) {
    // The deployment is gone (deleted, or discarded by the API): there is nothing left to mark.
    if (!failureOfType(error, DEPLOYMENT_NOT_FOUND)) throw error;
  }
}

async function deploy(input: DeployWorkflowInput, progress: DeployProgress): Promise<DeployOutcome> {
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
    if (!(error instanceof ActivityFailure) || isCancellation(error)) throw error;
    const message = failureOfType(error, BUILD_FAILED)?.message ?? `the build could not run: ${error.cause?.message ?? error.message}`;
    await enter('BUILD_FAILED', message);
    return { deployment_id: input.deploymentId, status: 'BUILD_FAILED', message };
  }

  await enter('DEPLOYING');
  const replicas = await records.scaleToMinReplicas({ deploymentId: input.deploymentId });
  const deadlineMs = Date.now() + input.deployTimeoutSeconds * 1000;
  try {
    await waits.awaitReplicasReady({ deploymentId: input.deploymentId, replicas, deadlineMs });
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
  let unverified: string | undefined;
  if (adoption.adopted) {
    try {
      await waits.awaitRouteApplied({ modelId: adoption.modelId, environment: PRODUCTION, generation: adoption.generation, deadlineMs });
    } catch (error) {
      // Its replicas are ready and production points at it: it is ACTIVE, with the doubt said.
      const notApplied = failureOfType(error, ROUTE_NOT_APPLIED);
      if (!notApplied) throw error;
      unverified = `serves production once a gateway applies its route: ${notApplied.message}`;
    }
  }
  await enter('ACTIVE', unverified);
  const outcome: DeployOutcome = { deployment_id: input.deploymentId, status: 'ACTIVE', became_production: adoption.adopted };
  if (input.promoteTo && !(adoption.adopted && input.promoteTo === PRODUCTION)) {
    const started = await records.promoteAfterDeploy({
      deploymentId: input.deploymentId,
      environment: input.promoteTo,
      actor: input.actor ?? 'gantry',
      ...(input.actorSource ? { actorSource: input.actorSource } : {}),
    });
    outcome.promotion = { promotion_id: started.promotionId, refused: started.refused };
  }
  return outcome;
}
