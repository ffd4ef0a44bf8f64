/**
 * developmentUpdateWorkflow: sends a new revision of a development deployment's code to its
 * replica. With the same requirements (`mode: 'reload'`) the running replica live-reloads it
 * (or, asleep, wakes on it); when the requirements changed the revision is rebuilt (a new Python
 * environment) and the replica replaced — not zero-downtime, as for Baseten's development
 * deployments. UPDATING → ACTIVE; when the new code does not build or load, the previous
 * revision is put back and keeps serving, and the status message says why. A cancellation, or
 * an unexpected failure, puts the previous revision back the same way.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities';
import { BUILD_FAILED, DEVELOPMENT_UPDATE_INTERRUPTED, REPLICAS_NOT_READY } from '../contracts/failures';
import type { DevelopmentUpdateInput, DevelopmentUpdateOutcome } from '../contracts/workflows';
import { builds, failureOfType, records, waits } from './activity-proxies';

/** The failure's message: the typed cause when it is one, else whatever ended the activity. */
function causeOf(error: unknown, type: string): string | undefined {
  if (!(error instanceof ActivityFailure) || isCancellation(error)) return undefined;
  return failureOfType(error, type)?.message ?? error.cause?.message ?? error.message;
}

/** Sends a development deployment a new revision; see the module comment. */
export async function developmentUpdateWorkflow(input: DevelopmentUpdateInput): Promise<DevelopmentUpdateOutcome> {
  const { deploymentId, revision } = input;
  const { desiredReplicas: previousReplicas, ...previousCode } = input.previous;
  const failed = async (message: string, revisionApplied: boolean): Promise<DevelopmentUpdateOutcome> => {
    if (revisionApplied) await records.applyRevision({ deploymentId, ...previousCode, desiredReplicas: previousReplicas });
    await records.setDeploymentStatus({
      deploymentId,
      status: previousReplicas > 0 ? 'ACTIVE' : 'SCALED_TO_ZERO',
      message: `update to revision ${revision} failed, the previous code ${previousReplicas > 0 ? 'serves' : 'stays (asleep)'}: ${message}`,
    });
    if (input.mode === 'reload') await records.releaseRevisions({ deploymentId, serving: previousCode.revision, failed: revision });
    return { deployment_id: deploymentId, revision, status: 'FAILED', message };
  };

  let revisionApplied = false;
  try {
    return input.mode === 'reload' ? await reload() : await rebuild();
  } catch (error) {
    const cancelled = isCancellation(error);
    const cause = cancelled ? 'the update was cancelled' : `the update failed unexpectedly: ${(error as ActivityFailure).cause?.message ?? (error as Error).message}`;
    await CancellationScope.nonCancellable(() => failed(cause, revisionApplied));
    if (cancelled) throw error;
    throw ApplicationFailure.create({ type: DEVELOPMENT_UPDATE_INTERRUPTED, message: cause, nonRetryable: true });
  }

  /** Waits until a replica runs the new revision; the cause when it does not (in time, or at all). */
  async function revisionNotReady(): Promise<string | undefined> {
    try {
      await waits.awaitReplicasReady({ deploymentId, replicas: 1, revision, deadlineMs: Date.now() + input.deployTimeoutSeconds * 1000 });
      return undefined;
    } catch (error) {
      const message = causeOf(error, REPLICAS_NOT_READY);
      if (message === undefined) throw error;
      return message;
    }
  }

  async function rebuild(): Promise<DevelopmentUpdateOutcome> {
    await records.setDeploymentStatus({ deploymentId, status: 'UPDATING' });
    let built: Awaited<ReturnType<Activities['buildDeployment']>>;
    try {
      built = await builds.buildDeployment({ deploymentId, revision });
    } catch (error) {
      const message = causeOf(error, BUILD_FAILED);
      if (message === undefined) throw error;
      return failed(message, false);
    }
    revisionApplied = true;
    await records.applyRevision({ deploymentId, revision, envKey: built.envKey, config: built.config, desiredReplicas: 1 });
    const notReady = await revisionNotReady();
    if (notReady !== undefined) return failed(notReady, true);
    await records.setDeploymentStatus({ deploymentId, status: 'ACTIVE' });
    return { deployment_id: deploymentId, revision, status: 'UPDATED' };
  }

  async function reload(): Promise<DevelopmentUpdateOutcome> {
    revisionApplied = true;
    const { woken } = await records.startRevision({ deploymentId, revision, config: input.config! });
    const notReady = await revisionNotReady();
    if (notReady !== undefined) return failed(notReady, true);
    await records.setDeploymentStatus({ deploymentId, status: 'ACTIVE' });
    await records.releaseRevisions({ deploymentId, serving: revision });
    return { deployment_id: deploymentId, revision, status: 'UPDATED', woken };
  }
}
