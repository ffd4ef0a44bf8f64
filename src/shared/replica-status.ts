/**
 * How a deployment's status follows its replica count, in one place for every writer of
 * desired replicas (scaling activities, the autoscaler, promotions' cleanup, wake-ups).
 */
import type { DeploymentPatch, DeploymentRecord } from '../store/store';

const AWAKE: readonly DeploymentRecord['status'][] = ['ACTIVE', 'UNHEALTHY', 'WAKING_UP'];

/** The patch that sets `replicas`: to zero puts a serving deployment to sleep; up from zero wakes it. */
export function scalePatch(deployment: Pick<DeploymentRecord, 'status'>, replicas: number): DeploymentPatch {
  const status =
    replicas === 0 && AWAKE.includes(deployment.status) ? 'SCALED_TO_ZERO' : replicas > 0 && deployment.status === 'SCALED_TO_ZERO' ? 'WAKING_UP' : undefined;
  return { desired_replicas: replicas, status, status_message: status ? null : undefined };
}

/** The patch that wakes a sleeping deployment: max(min_replica, 1) replicas, WAKING_UP until one is ready. */
export function wakePatch(deployment: Pick<DeploymentRecord, 'autoscaling'>): DeploymentPatch {
  return { desired_replicas: Math.max(1, deployment.autoscaling.min_replica), status: 'WAKING_UP', status_message: null };
}
