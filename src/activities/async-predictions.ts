/**
 * Activities of async predictions: read and move an async request's record (compare-and-set on
 * its status), call the model through the gateway, and deliver the result to the webhook. The
 * model's input and output stay in the store: workflows pass request ids only.
 */
import * as http from 'node:http';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { signWebhookBody } from '../async/webhook-secret';
import {
  WEBHOOK_REQUEST_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  type AsyncRequestError,
  type AsyncRequestErrorCode,
  type AsyncRequestStatus,
  type AsyncWebhookPayload,
} from '../shared/views';
import { liveNodes, type AsyncRequestRecord } from '../store/store';
import type { ActivityDeps } from './deps';
import { ASYNC_REQUEST_GONE, NON_RETRYABLE_CALL_FAILURES, WEBHOOK_NOT_DELIVERED } from '../contracts/failures';
import { REQUEST_ID_HEADER } from '../logging/request-id';

/** How often a long activity heartbeats while it waits for an answer. */
const HEARTBEAT_MS = 2000;
/** How long one webhook delivery attempt may take. */
const WEBHOOK_ATTEMPT_MS = 30_000;

/** The error code of a gateway answer that is not a success. */
export function errorCodeOf(status: number): AsyncRequestErrorCode {
  if (status === 404) return 'MODEL_DOES_NOT_EXIST';
  if (status >= 400 && status < 500) return 'MODEL_INVALID_INPUT';
  if (status === 500) return 'MODEL_PREDICT_ERROR';
  if (status === 504) return 'MODEL_PREDICT_TIMEOUT';
  if (status === 503) return 'MODEL_UNAVAILABLE';
  return 'INTERNAL_SERVER_ERROR';
}

/** The webhook's `data`: the output parsed when it is JSON, else its text; null when there is none. */
export function webhookData(output: string | null): unknown {
  if (output === null) return null;
  try {
    return JSON.parse(output);
  } catch {
    return output;
  }
}

/** A gateway answer, read whole. */
interface GatewayAnswer {
  status: number;
  contentType: string | null;
  body: string;
}

/**
 * POSTs `body` to the gateway and reads the whole answer, with no deadline of its own (a
 * predict may take up to its `predict_timeout_seconds`, longer than fetch's fixed 300 s): the
 * activity's start-to-close timeout and its cancellation are the deadlines.
 */
function postToGateway(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<GatewayAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, signal }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 502, contentType: response.headers['content-type'] ?? null, body: Buffer.concat(chunks).toString('utf8') }),
      );
      response.once('error', reject);
      response.once('aborted', () => reject(new Error('the gateway closed the answer before its end')));
    });
    request.once('error', reject);
    request.end(body);
  });
}

/** Runs `work` while heartbeating the current activity every few seconds. */
async function heartbeating<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  context.heartbeat();
  const timer = setInterval(() => context.heartbeat(), HEARTBEAT_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Creates the async prediction activities. */
export function createAsyncPredictionActivities(deps: ActivityDeps) {
  const { store } = deps;

  /**
   * The deployment an in-progress request is called on: its own, unless it came through an
   * environment whose promotion has since deactivated or deleted it; then the environment's
   * current deployment, recorded (compare-and-set on IN_PROGRESS) before the call.
   */
  async function servingDeployment(request: AsyncRequestRecord): Promise<string> {
    if (!request.environment) return request.deployment_id;
    const deployment = await store.getDeployment(request.deployment_id);
    const gone = !deployment || deployment.deleted_at !== null || deployment.status === 'INACTIVE' || deployment.status === 'DEACTIVATING';
    if (!gone) return request.deployment_id;
    const current = (await store.getEnvironment(request.model_id, request.environment))?.current_deployment_id;
    if (!current || current === request.deployment_id) return request.deployment_id;
    await store.transitionAsyncRequest(request.id, ['IN_PROGRESS'], { deployment_id: current });
    return current;
  }

  async function requireRequest(requestId: string): Promise<AsyncRequestRecord> {
    const request = await store.getAsyncRequest(requestId);
    if (!request) throw ApplicationFailure.nonRetryable(`async request ${requestId} does not exist`, ASYNC_REQUEST_GONE);
    return request;
  }

  function asyncCalls(): NonNullable<ActivityDeps['asyncCalls']> {
    if (!deps.asyncCalls) throw ApplicationFailure.nonRetryable('this worker was started without async prediction settings', 'AsyncNotConfigured');
    return deps.asyncCalls;
  }

  return {
    /** The request's status now ('MISSING' when its record is gone): a queued workflow's recheck. */
    async asyncRequestStatus(input: { requestId: string }): Promise<AsyncRequestStatus | 'MISSING'> {
      return (await store.getAsyncRequest(input.requestId))?.status ?? 'MISSING';
    },

    /** Expires a request still QUEUED; answers its status afterwards (IN_PROGRESS when it was dispatched first). */
    async expireAsyncRequest(input: { requestId: string }): Promise<AsyncRequestStatus | 'MISSING'> {
      const request = await store.getAsyncRequest(input.requestId);
      if (!request) return 'MISSING';
      await store.transitionAsyncRequest(input.requestId, ['QUEUED'], {
        status: 'EXPIRED',
        ended_at: new Date().toISOString(),
        webhook_status: request.webhook_endpoint ? 'CANCELED' : 'NO_WEBHOOK_PROVIDED',
      });
      return (await store.getAsyncRequest(input.requestId))?.status ?? 'MISSING';
    },

    /** Cancels a request still QUEUED; answers its status afterwards (IN_PROGRESS when it was dispatched first). */
    async cancelQueuedAsyncRequest(input: { requestId: string }): Promise<AsyncRequestStatus | 'MISSING'> {
      const request = await store.getAsyncRequest(input.requestId);
      if (!request) return 'MISSING';
      await store.transitionAsyncRequest(input.requestId, ['QUEUED'], {
        status: 'CANCELED',
        ended_at: new Date().toISOString(),
        webhook_status: request.webhook_endpoint ? 'CANCELED' : 'NO_WEBHOOK_PROVIDED',
      });
      return (await store.getAsyncRequest(input.requestId))?.status ?? 'MISSING';
    },

    /**
     * Calls the model for an IN_PROGRESS request through a live node's gateway (its balancing,
     * wake-up and metering apply), heartbeating while it waits; stores the answer and SUCCEEDED.
     * A 4xx answer fails without retry; 5xx answers and connection errors are retried by the
     * request's policy. A request no longer IN_PROGRESS (a retry after success) is left as it is.
     */
    async callModel(input: { requestId: string }): Promise<{ status: AsyncRequestStatus }> {
      const request = await requireRequest(input.requestId);
      if (request.status !== 'IN_PROGRESS') return { status: request.status };
      const attempt = Context.current().info.attempt;
      await store.transitionAsyncRequest(request.id, ['IN_PROGRESS'], { attempts: attempt, errors: [] });
      // The error (which may quote the input) goes to the record; the failure Temporal keeps says only the status.
      const failWith = async (code: AsyncRequestErrorCode, message: string, summary: string, retryable: boolean): Promise<never> => {
        await store.transitionAsyncRequest(request.id, ['IN_PROGRESS'], { errors: [{ code, message }] });
        throw retryable ? ApplicationFailure.retryable(summary, code) : ApplicationFailure.nonRetryable(summary, code);
      };
      const node = liveNodes(await store.listNodes())[0];
      if (!node) throw ApplicationFailure.retryable('no live node serves inference', 'MODEL_UNAVAILABLE');
      const deploymentId = await servingDeployment(request);
      const url = `${node.gateway_url}/models/${encodeURIComponent(request.model_id)}/deployment/${encodeURIComponent(deploymentId)}/predict`;
      const answer = await heartbeating(async () => {
        try {
          return await postToGateway(
            url,
            // The async request's id is also its request id, in the gateway's and the replica's logs.
            { authorization: `Api-Key ${asyncCalls().apiKey()}`, 'content-type': 'application/json', [WEBHOOK_REQUEST_ID_HEADER]: request.id, [REQUEST_ID_HEADER]: request.id },
            request.input,
            Context.current().cancellationSignal,
          );
        } catch (error) {
          const message = `calling the gateway failed: ${(error as Error).message}`;
          return failWith('INTERNAL_SERVER_ERROR', message, message, true);
        }
      });
      if (answer.status >= 200 && answer.status < 300) {
        await store.transitionAsyncRequest(request.id, ['IN_PROGRESS'], {
          status: 'SUCCEEDED',
          output: answer.body,
          output_content_type: answer.contentType,
          attempts: attempt,
          ended_at: new Date().toISOString(),
        });
        return { status: 'SUCCEEDED' };
      }
      const code = errorCodeOf(answer.status);
      return failWith(
        code,
        `the model answered ${answer.status}: ${answer.body.slice(0, 500)}`,
        `the model answered ${answer.status}`,
        !NON_RETRYABLE_CALL_FAILURES.includes(code),
      );
    },

    /** Ends an IN_PROGRESS request FAILED: with the error its last attempt recorded, else the one given (a timeout). */
    async failAsyncRequest(input: { requestId: string; error: AsyncRequestError }): Promise<void> {
      const request = await requireRequest(input.requestId);
      await store.transitionAsyncRequest(input.requestId, ['IN_PROGRESS'], {
        status: 'FAILED',
        errors: request.errors.length > 0 && request.errors[0]!.code === input.error.code ? request.errors : [input.error],
        ended_at: new Date().toISOString(),
      });
    },

    /**
     * POSTs the request's outcome to its webhook, signed; a delivery already recorded is not
     * sent again (a retry after a worker crash). A non-2xx answer or no answer is retried.
     */
    async deliverWebhook(input: { requestId: string }): Promise<void> {
      const request = await requireRequest(input.requestId);
      if (!request.webhook_endpoint || request.webhook_status === 'SUCCEEDED') return;
      const payload: AsyncWebhookPayload = {
        request_id: request.id,
        model_id: request.model_id,
        deployment_id: request.deployment_id,
        type: 'async_request_completed',
        time: new Date().toISOString(),
        data: webhookData(request.output),
        errors: request.errors,
      };
      const body = JSON.stringify(payload);
      const status = await heartbeating(async () => {
        try {
          const response = await fetch(request.webhook_endpoint!, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              [WEBHOOK_SIGNATURE_HEADER]: signWebhookBody(asyncCalls().webhookSecret(), body),
              [WEBHOOK_REQUEST_ID_HEADER]: request.id,
            },
            body,
            signal: AbortSignal.any([AbortSignal.timeout(WEBHOOK_ATTEMPT_MS), Context.current().cancellationSignal]),
          });
          await response.arrayBuffer();
          return response.status;
        } catch (error) {
          throw ApplicationFailure.retryable(`the webhook did not answer: ${(error as Error).message}`, WEBHOOK_NOT_DELIVERED);
        }
      });
      if (status < 200 || status >= 300) throw ApplicationFailure.retryable(`the webhook answered ${status}`, WEBHOOK_NOT_DELIVERED);
      await store.transitionAsyncRequest(request.id, ['SUCCEEDED', 'FAILED'], { webhook_status: 'SUCCEEDED' });
    },

    /** Records that the webhook could not be reached in time: WEBHOOK_FAILED (a FAILED request stays FAILED). */
    async markWebhookFailed(input: { requestId: string }): Promise<void> {
      await store.transitionAsyncRequest(input.requestId, ['SUCCEEDED'], { status: 'WEBHOOK_FAILED', webhook_status: 'FAILED' });
      await store.transitionAsyncRequest(input.requestId, ['FAILED'], { webhook_status: 'FAILED' });
    },
  };
}
