/**
 * Scaling activities: write a deployment's desired replica count, then wait for the node to
 * report them ready. Setting is idempotent; waiting only reads, so both survive retries.
 */
import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { readLogTail } from '../logs/deployment-logs';
import { type ObservedReplica, scalePatch } from '../store/store';
import { declaredSecretNames, isMissingSecretMessage, missingSecretMessage } from '../shared/secrets';
import type { ActivityDeps } from './deps';
import { REPLICAS_NOT_READY } from '../contracts/failures';
import { requireDeployment } from './records';

/** A replica that has restarted this often without becoming ready is crash-looping. */
export const CRASH_LOOP_RESTARTS = 3;

/** Why replicas are not (yet) ready, or undefined while it may still come. */
export function replicaFailure(replicas: ObservedReplica[]): string | undefined {
  const failedLoad = replicas.find((replica) => replica.last_error);
  // A declared secret that is not set is said as it is: `secret "x" is not set`.
  if (failedLoad && isMissingSecretMessage(failedLoad.last_error!)) return failedLoad.last_error!;
  if (failedLoad) return `replica ${failedLoad.id} failed to start: ${failedLoad.last_error}`;
  const looping = replicas.find((replica) => replica.state !== 'READY' && replica.restarts >= CRASH_LOOP_RESTARTS);
  if (looping) {
    return `replica ${looping.id} is crash-looping: restarted ${looping.restarts} times, last ${looping.last_exit ?? 'exit unknown'}`;
  }
  return undefined;
}

/** Creates the scaling activities. */
export function createScalingActivities(deps: ActivityDeps) {
  const pollMs = deps.pollIntervalMs ?? 250;
  return {
    /**
     * Sets how many replicas the node should run for a deployment. A serving deployment taken
     * to zero becomes SCALED_TO_ZERO; one scaled up from zero is WAKING_UP until ready.
     */
    async scaleDeployment(input: { deploymentId: string; replicas: number }): Promise<void> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      await deps.store.updateDeployment(input.deploymentId, scalePatch(deployment, input.replicas));
    },

    /** Scales a deployment to its minimum (at least one, so that a deploy proves it serves); returns the count. */
    async scaleToMinReplicas(input: { deploymentId: string }): Promise<number> {
      const deployment = await requireDeployment(deps, input.deploymentId);
      const replicas = Math.max(1, deployment.autoscaling.min_replica);
      await deps.store.updateDeployment(input.deploymentId, { desired_replicas: replicas });
      return replicas;
    },

    /**
     * Waits until `replicas` replicas of the deployment (at `revision` or later, if given) are
     * ready. Fails (non-retryable `ReplicasNotReady`) as soon as load() fails, a replica
     * crash-loops or the live reload to `revision` fails, or when `deadlineMs` (epoch ms, fixed by
     * the workflow so retries do not extend it) passes.
     */
    async awaitReplicasReady(input: { deploymentId: string; replicas: number; deadlineMs: number; revision?: number }): Promise<void> {
      const context = Context.current();
      for (;;) {
        const deployment = await requireDeployment(deps, input.deploymentId);
        // Names only: a declared secret that is not set fails the deploy before any replica tries.
        const declared = declaredSecretNames(deployment.config);
        if (declared.length > 0) {
          const set = new Set((await deps.store.listSecrets()).map((secret) => secret.name));
          const missing = declared.find((name) => !set.has(name));
          if (missing !== undefined) throw ApplicationFailure.nonRetryable(missingSecretMessage(missing), REPLICAS_NOT_READY);
        }
        const all = await deps.store.listReplicas(input.deploymentId);
        const observed = all.filter((replica) => replica.revision >= (input.revision ?? 0));
        const ready = observed.filter((replica) => replica.state === 'READY').length;
        context.heartbeat({ ready });
        if (ready >= input.replicas) {
          await deps.store.setStatusIf(input.deploymentId, 'WAKING_UP', 'ACTIVE', null);
          return;
        }
        // A live reload that failed leaves the replica on the older revision, saying why.
        const reloadFailed = input.revision === undefined ? undefined : all.find((replica) => replica.reload_error?.revision === input.revision);
        if (reloadFailed) throw ApplicationFailure.nonRetryable(reloadFailed.reload_error!.error, REPLICAS_NOT_READY);
        const failure = replicaFailure(observed);
        if (failure) throw ApplicationFailure.nonRetryable(failure, REPLICAS_NOT_READY);
        if (Date.now() > input.deadlineMs) {
          const states = observed.map((replica) => replica.state).join(', ') || 'none started';
          const lastLine = readLogTail(deps.paths.logs, input.deploymentId, 1)[0]?.message;
          throw ApplicationFailure.nonRetryable(
            `${ready} of ${input.replicas} replicas became healthy before the deploy timeout (replicas: ${states})` + (lastLine ? `; last log line: ${lastLine}` : ''),
            REPLICAS_NOT_READY,
          );
        }
        await sleep(pollMs); // rejects when the activity is cancelled
      }
    },
  };
}
