/**
 * The activity stubs workflows call, grouped by how long they may take and how they retry,
 * and the helper that reads a typed failure out of an activity failure. Shared by the deploy
 * and development workflows so their timeouts and retry policies cannot drift apart.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities';
import { NON_RETRYABLE_FAILURES } from '../contracts/failures';

/** Record-keeping and desired-state writes: seconds each, retried until they succeed. */
export const records = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/**
 * Builds: up to 30 minutes, heartbeating every 5 s (a worker that dies mid-build is noticed
 * within 20 s); three attempts for failures that are not the package's.
 */
export const builds = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** Waits on observed state (replicas ready, routes applied), heartbeating; their own deadlines end them. */
export const waits = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** A promotion's steps (scale, route, record): short, so a worker that dies mid-step is noticed within seconds. */
export const promotionSteps = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '5 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** A promotion's waits: bounded by promotion_timeout_seconds, heartbeating every few seconds for the same reason. */
export const promotionWaits = proxyActivities<Activities>({
  startToCloseTimeout: '25 hours',
  heartbeatTimeout: '10 seconds',
  retry: { maximumInterval: '5 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
});

/** The ApplicationFailure of the given type behind an activity failure, if that is what it is. */
export function failureOfType(error: unknown, type: string): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === type) return error.cause;
  return undefined;
}
