/**
 * asyncPredictionWorkflow on the time-skipping test server with typed mock activities: queued →
 * dispatched → succeeded with its webhook; a lost dispatch signal found on the recheck; expiry;
 * cancel; the call retried by the request's policy (backoff doubling, capped) and its last error
 * kept; a 4xx answer not retried; the webhook retried until delivered, or WEBHOOK_FAILED at its
 * deadline.
 */
import { strict as assert } from 'node:assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { asyncPredictionWorkflow } from '../../src/workflows';
import { asyncCancelSignal, asyncDispatchedSignal } from '../../src/contracts/messages';
import { FakeAsyncRequest } from '../helpers/fake-async';
import { startTimeSkipping } from '../helpers/time-skipping';
import type { AsyncPredictionInput, AsyncPredictionOutcome } from '../../src/contracts/workflows';

describe('asyncPredictionWorkflow (time-skipping)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  let counter = 0;

  before(async () => {
    ({ env, bundle } = await startTimeSkipping());
  });

  after(async () => {
    await env?.teardown();
  });

  const input = (overrides: Partial<AsyncPredictionInput> = {}): AsyncPredictionInput => ({
    requestId: `r${counter}`,
    maxTimeInQueueSeconds: 600,
    retry: { max_attempts: 3, initial_delay_ms: 1000, max_delay_ms: 5000 },
    callTimeoutSeconds: 120,
    webhook: true,
    webhookRetrySeconds: 3600,
    ...overrides,
  });

  type Handle = Awaited<ReturnType<TestWorkflowEnvironment['client']['workflow']['start']>>;

  async function run(request: FakeAsyncRequest, overrides: Partial<AsyncPredictionInput>, drive: (handle: Handle) => Promise<void>): Promise<AsyncPredictionOutcome> {
    const taskQueue = `async-test-${++counter}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: request.activities() });
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start(asyncPredictionWorkflow, { taskQueue, workflowId: `async:r${counter}`, args: [input(overrides)] });
      await drive(handle);
      return handle.result();
    });
  }

  const dispatch = (request: FakeAsyncRequest) => async (handle: Handle) => {
    request.dispatch();
    await handle.signal(asyncDispatchedSignal);
  };

  it('waits queued, then on dispatch calls the model and delivers the webhook once: SUCCEEDED', async () => {
    const request = new FakeAsyncRequest();
    const outcome = await run(request, {}, dispatch(request));
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(request.status, 'SUCCEEDED');
    assert.equal(request.callAttempts.length, 1);
    assert.equal(request.delivered, 1);
    assert.equal(request.webhookStatus, 'SUCCEEDED');
  });

  it('finds a dispatch whose signal was lost on its recheck of the record', async () => {
    const request = new FakeAsyncRequest({ webhook: false });
    const outcome = await run(request, { webhook: false }, async () => request.dispatch());
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(request.delivered, 0, 'no webhook, no delivery');
  });

  it('expires after max_time_in_queue_seconds without capacity, and delivers nothing', async () => {
    const request = new FakeAsyncRequest();
    const outcome = await run(request, { maxTimeInQueueSeconds: 10 }, async () => {});
    assert.equal(outcome.status, 'EXPIRED');
    assert.equal(request.callAttempts.length, 0);
    assert.equal(request.webhookAttempts, 0);
  });

  it('ends CANCELED on the cancel signal (the record canceled by the API, or by the workflow when sent from Temporal)', async () => {
    const byApi = new FakeAsyncRequest();
    const outcome = await run(byApi, {}, async (handle) => {
      assert.equal(byApi.cancel(), true);
      await handle.signal(asyncCancelSignal);
    });
    assert.equal(outcome.status, 'CANCELED');
    const bySignal = new FakeAsyncRequest();
    assert.equal((await run(bySignal, {}, (handle) => handle.signal(asyncCancelSignal))).status, 'CANCELED');
    assert.equal(bySignal.status, 'CANCELED');
    for (const request of [byApi, bySignal]) assert.equal(request.callAttempts.length + request.webhookAttempts, 0);
  });

  it('a cancel that loses to the dispatch goes on with the call', async () => {
    const request = new FakeAsyncRequest({ webhook: false });
    const outcome = await run(request, { webhook: false }, async (handle) => {
      request.dispatch();
      await handle.signal(asyncCancelSignal);
    });
    assert.equal(outcome.status, 'SUCCEEDED');
  });

  it('retries the call by the request policy (backoff doubling, capped at max_delay_ms) and keeps the last error: FAILED, webhook sent', async () => {
    const request = new FakeAsyncRequest({
      callFailures: [
        { code: 'MODEL_UNAVAILABLE', retryable: true },
        { code: 'MODEL_PREDICT_ERROR', retryable: true },
        { code: 'INTERNAL_SERVER_ERROR', retryable: true },
        { code: 'MODEL_PREDICT_TIMEOUT', retryable: true },
        { code: 'MODEL_PREDICT_ERROR', retryable: true },
        { code: 'MODEL_PREDICT_ERROR', retryable: true },
      ],
    });
    const outcome = await run(request, { retry: { max_attempts: 5, initial_delay_ms: 2000, max_delay_ms: 5000 } }, dispatch(request));
    assert.equal(outcome.status, 'FAILED');
    assert.deepEqual(
      request.callAttempts.map((a) => a.attempt),
      [1, 2, 3, 4, 5],
      'max_attempts, no more',
    );
    // An attempt is scheduled when the one before it failed, so these gaps are the backoffs before attempts 2, 3 and 4.
    const gaps = request.callAttempts.slice(2).map((a, i) => a.scheduledAt - request.callAttempts[i + 1]!.scheduledAt);
    assert.ok(gaps[0]! >= 2000 && gaps[0]! < 3000, `first retry after ~2 s: ${gaps}`);
    assert.ok(gaps[1]! >= 4000 && gaps[1]! < 5000, `then ~4 s: ${gaps}`);
    assert.ok(gaps[2]! >= 5000 && gaps[2]! < 6000, `then capped at 5 s: ${gaps}`);
    assert.deepEqual(
      request.errors.map((e) => e.code),
      ['MODEL_PREDICT_ERROR'],
      `the fifth attempt's error, the last one made: ${JSON.stringify(request.errors)}`,
    );
    assert.equal(request.delivered, 1, 'a failed request is delivered to its webhook too');
  });

  it('succeeds on a retry when an attempt fails, and never retries a 4xx answer', async () => {
    const flaky = new FakeAsyncRequest({ callFailures: [{ code: 'MODEL_PREDICT_ERROR', retryable: true }] });
    assert.equal((await run(flaky, {}, dispatch(flaky))).status, 'SUCCEEDED');
    assert.equal(flaky.callAttempts.length, 2);
    const invalid = new FakeAsyncRequest({ callFailures: [{ code: 'MODEL_INVALID_INPUT', retryable: false }] });
    assert.equal((await run(invalid, {}, dispatch(invalid))).status, 'FAILED');
    assert.equal(invalid.callAttempts.length, 1);
    assert.equal(invalid.errors[0]?.code, 'MODEL_INVALID_INPUT');
  });

  it('retries the webhook until it answers 2xx, once delivered', async () => {
    const request = new FakeAsyncRequest({ webhookFailures: 5 });
    assert.equal((await run(request, {}, dispatch(request))).status, 'SUCCEEDED');
    assert.equal(request.webhookAttempts, 6);
    assert.equal(request.delivered, 1);
  });

  it('gives the webhook up at its deadline: WEBHOOK_FAILED, webhook_status FAILED', async () => {
    const request = new FakeAsyncRequest({ webhookFailures: Infinity });
    const outcome = await run(request, { webhookRetrySeconds: 300 }, dispatch(request));
    assert.equal(outcome.status, 'WEBHOOK_FAILED');
    assert.equal(request.status, 'WEBHOOK_FAILED');
    assert.equal(request.webhookStatus, 'FAILED');
    // 1 s doubling to 60 s: attempts at 0, 1, 3, 7, 15, 31, 63, 123, 183, 243 s; none after 300 s.
    assert.ok(request.webhookAttempts >= 8 && request.webhookAttempts <= 11, `${request.webhookAttempts} attempts in 300 s`);
  });
});
