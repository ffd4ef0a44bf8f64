/** Activities that write deployment and environment records: statuses, revisions and current deployments. */
import * as fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/activity';
import { archivePath, buildDir } from '../home';
import { appendLog } from '../logs/deployment-logs';
import type { DeploymentStatus, ModelConfig } from '../shared/schemas';
import type { DeploymentRecord } from '../store/store';
import type { ActivityDeps } from './deps';
import { DEPLOYMENT_NOT_FOUND } from '../contracts/failures';
import type { Adoption } from '../contracts/activities';

/** Loads a deployment or fails the activity without retries. */
export async function requireDeployment(deps: ActivityDeps, deploymentId: string): Promise<DeploymentRecord> {
  const deployment = await deps.store.getDeployment(deploymentId);
  if (!deployment) throw ApplicationFailure.nonRetryable(`deployment ${deploymentId} does not exist`, DEPLOYMENT_NOT_FOUND);
  return deployment;
}

/** Creates the record-keeping activities. */
export function createRecordActivities(deps: ActivityDeps) {
  return {
    /** Sets a deployment's status (and the message saying why, or clears it). */
    async setDeploymentStatus(input: { deploymentId: string; status: DeploymentStatus; message?: string }): Promise<void> {
      const before = await requireDeployment(deps, input.deploymentId);
      await deps.store.updateDeployment(input.deploymentId, { status: input.status, status_message: input.message ?? null });
      if (before.status !== input.status || before.status_message !== (input.message ?? null)) {
        appendLog(deps.paths.logs, input.deploymentId, 'gantry', [`status ${input.status}${input.message ? `: ${input.message}` : ''}`]);
      }
    },

    /** Switches a development deployment to a built revision (its code, config and Python environment). */
    async applyRevision(input: { deploymentId: string; revision: number; envKey: string; config: ModelConfig; desiredReplicas: number }): Promise<void> {
      await requireDeployment(deps, input.deploymentId);
      await deps.store.updateDeployment(input.deploymentId, {
        revision: input.revision,
        env_key: input.envKey,
        config: input.config,
        desired_replicas: input.desiredReplicas,
      });
    },

    /**
     * Points a development deployment at a new revision of its code, already unpacked and in the
     * same Python environment: UPDATING, and the node live-reloads the replica; or, asleep,
     * WAKING_UP with one replica, which starts on the new code. Returns whether it woke it.
     */
    async startRevision(input: { deploymentId: string; revision: number; config: ModelConfig }): Promise<{ woken: boolean }> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      if (deployment.revision === input.revision) return { woken: deployment.status === 'WAKING_UP' }; // a retry
      const asleep = deployment.desired_replicas === 0;
      await deps.store.updateDeployment(input.deploymentId, {
        revision: input.revision,
        config: input.config,
        status: asleep ? 'WAKING_UP' : 'UPDATING',
        status_message: null,
        desired_replicas: asleep ? 1 : undefined,
      });
      appendLog(deps.paths.logs, input.deploymentId, 'gantry', [`revision ${input.revision}: ${asleep ? 'waking the replica on the new code' : 'live-reloading the replica'}`]);
      return { woken: asleep };
    },

    /**
     * Removes what a development deployment no longer needs: the unpacked code of a revision that
     * failed (its archive stays, so its number is never used again), or else the code and
     * archives of revisions two or more behind the one serving.
     */
    async releaseRevisions(input: { deploymentId: string; serving: number; failed?: number }): Promise<void> {
      const log = (line: string): void => appendLog(deps.paths.logs, input.deploymentId, 'gantry', [line]);
      if (input.failed !== undefined) {
        fs.rmSync(buildDir(deps.paths, input.deploymentId, input.failed), { recursive: true, force: true });
        log(`revision ${input.failed} failed; revision ${input.serving} keeps serving`);
        return;
      }
      log(`revision ${input.serving} serves`);
      for (let old = input.serving - 2; old >= 1; old--) {
        const dir = buildDir(deps.paths, input.deploymentId, old);
        const archive = archivePath(deps.paths, input.deploymentId, old);
        if (!fs.existsSync(dir) && !fs.existsSync(archive)) break;
        fs.rmSync(dir, { recursive: true, force: true });
        fs.rmSync(archive, { force: true });
      }
    },

    /** Makes the deployment the environment's current one if it has none; returns whether it did. */
    async adoptIfNoCurrentDeployment(input: { deploymentId: string; environment: string }): Promise<Adoption> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      if (deployment.kind === 'development') return { adopted: false }; // only published deployments serve environments
      const before = await deps.store.getEnvironment(deployment.model_id, input.environment);
      // A retry after a success finds the deployment already current: report it adopted again.
      const alreadyCurrent = before?.current_deployment_id === deployment.id;
      const adopted = alreadyCurrent || (await deps.store.adoptIfNoCurrentDeployment(deployment.model_id, input.environment, deployment.id));
      if (!adopted) return { adopted };
      const route = await deps.store.getRoute(deployment.model_id, input.environment);
      if (!route) throw new Error(`environment ${input.environment} has no route after adoption`);
      if (!alreadyCurrent)
        await deps.store.appendAudit({
          model_id: deployment.model_id,
          actor: 'gantry',
          action: 'SET_CURRENT_DEPLOYMENT',
          target: input.environment,
          details: { deployment_id: deployment.id, reason: 'first deployment of the model' },
        });
      return { adopted, modelId: deployment.model_id, generation: route.generation };
    },
  };
}
