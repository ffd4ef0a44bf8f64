/**
 * asyncPredictionWorkflow: one async prediction request, from the queue to the webhook. It
 * waits QUEUED until the dispatcher marks it IN_PROGRESS and signals `dispatched` (rechecking the
 * record every 30 s, so a lost signal only delays it), until it is canceled, or until
 * max_time_in_queue_seconds pass (EXPIRED). Dispatched, it calls the model through the gateway
 * with the request's retry policy (SUCCEEDED, or FAILED with the error), then delivers the result
 * to the webhook, retried with backoff until the webhook deadline (else WEBHOOK_FAILED). Its
 * input is ids and settings only: the model's input and output stay in the store.
 */
import { ActivityFailure, ApplicationFailure, condition, continueAsNew, proxyActivities, setHandler, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../contracts/activities';
import { ASYNC_REQUEST_GONE, NON_RETRYABLE_CALL_FAILURES } from '../contracts/failures';
import { ASYNC_REQUEST_ERROR_CODES } from '../shared/constants';
import type { AsyncRequestError, AsyncRequestErrorCode, AsyncRequestStatus } from '../shared/views';
import { asyncCancelSignal, asyncDispatchedSignal } from '../contracts/messages';
import type { AsyncPredictionInput, AsyncPredictionOutcome } from '../contracts/workflows';

/** How often a queued request rechecks its record (a dispatch or cancel whose signal was lost). */
export const ASYNC_RECHECK_MS = 30_000;

/** The request's record: seconds each, retried until they succeed. */
const asyncRecords = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '5 seconds', nonRetryableErrorTypes: [ASYNC_REQUEST_GONE] },
});

const ERROR_CODES: readonly string[] = ASYNC_REQUEST_ERROR_CODES;

/** The async request error behind a failed call: the last attempt's typed failure, else what ended it. */
function callError(error: unknown): AsyncRequestError {
  if (error instanceof ActivityFailure) {
    const cause = error.cause;
    if (cause instanceof ApplicationFailure && cause.type && ERROR_CODES.includes(cause.type)) {
      return { code: cause.type as AsyncRequestErrorCode, message: cause.message };
    }
    if (cause instanceof TimeoutFailure) return { code: 'MODEL_PREDICT_TIMEOUT', message: `the call did not finish in time (${cause.timeoutType ?? 'timeout'})` };
    return { code: 'INTERNAL_SERVER_ERROR', message: cause?.message ?? error.message };
  }
  throw error;
}

/** Runs one async prediction request; see the module comment. */
export async function asyncPredictionWorkflow(input: AsyncPredictionInput): Promise<AsyncPredictionOutcome> {
  const { requestId } = input;
  const ended = (status: AsyncPredictionOutcome['status']): AsyncPredictionOutcome => ({ request_id: requestId, status });
  let dispatched = false;
  let cancelRequested = false;
  setHandler(asyncDispatchedSignal, () => {
    dispatched = true;
  });
  setHandler(asyncCancelSignal, () => {
    cancelRequested = true;
  });

  // Queued: until dispatched, canceled or expired.
  const expiresAt = input.expiresAtMs ?? Date.now() + input.maxTimeInQueueSeconds * 1000;
  while (!dispatched) {
    // A long wait in the queue (up to 72 h) keeps its history bounded: the next run carries the
    // deadline; a signal lost on the way is found by its first recheck of the record.
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof asyncPredictionWorkflow>({ ...input, expiresAtMs: expiresAt });
    if (cancelRequested) {
      const status = await asyncRecords.cancelQueuedAsyncRequest({ requestId });
      if (status !== 'IN_PROGRESS') return ended(status);
      break;
    }
    const remaining = expiresAt - Date.now();
    if (remaining <= 0) {
      const status = await asyncRecords.expireAsyncRequest({ requestId });
      if (status !== 'IN_PROGRESS') return ended(status);
      break; // dispatched just before it expired
    }
    if (await condition(() => dispatched || cancelRequested, Math.min(remaining, ASYNC_RECHECK_MS))) continue;
    const status = await asyncRecords.asyncRequestStatus({ requestId });
    if (status === 'IN_PROGRESS') break;
    if (status !== 'QUEUED') return ended(status);
  }

  // In progress: the call, with the request's retry policy.
  const { max_attempts, initial_delay_ms, max_delay_ms } = input.retry;
  const initialMs = Math.max(1, initial_delay_ms);
  const calls = proxyActivities<Activities>({
    startToCloseTimeout: `${input.callTimeoutSeconds} seconds`,
    heartbeatTimeout: '10 seconds',
    retry: {
      maximumAttempts: max_attempts,
      initialInterval: initialMs,
      maximumInterval: Math.max(initialMs, max_delay_ms),
      backoffCoefficient: 2,
      nonRetryableErrorTypes: [...NON_RETRYABLE_CALL_FAILURES, ASYNC_REQUEST_GONE],
    },
  });
  let status: AsyncRequestStatus;
  try {
    status = (await calls.callModel({ requestId })).status;
  } catch (error) {
    await asyncRecords.failAsyncRequest({ requestId, error: callError(error) });
    status = 'FAILED';
  }

  // Delivered: the webhook, retried with backoff until its deadline.
  if (input.webhook && (status === 'SUCCEEDED' || status === 'FAILED')) {
    const hooks = proxyActivities<Activities>({
      startToCloseTimeout: '40 seconds',
      heartbeatTimeout: '10 seconds',
      scheduleToCloseTimeout: `${input.webhookRetrySeconds} seconds`,
      retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '60 seconds', nonRetryableErrorTypes: [ASYNC_REQUEST_GONE] },
    });
    try {
      await hooks.deliverWebhook({ requestId });
    } catch (error) {
      if (!(error instanceof ActivityFailure)) throw error;
      await asyncRecords.markWebhookFailed({ requestId });
      return ended(status === 'SUCCEEDED' ? 'WEBHOOK_FAILED' : status);
    }
  }
  return ended(status);
}
