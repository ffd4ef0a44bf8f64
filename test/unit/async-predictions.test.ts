/**
 * The pieces of async inference that need no stack: the request schema's defaults and bounds,
 * the webhook secret and signature, the error codes of gateway answers, and the store's queue
 * (dispatch order, capacity, compare-and-set transitions, re-pointing, retention).
 */
import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorCodeOf, webhookData } from '../../src/activities/async-predictions';
import { loadWebhookSecret, signWebhookBody } from '../../src/async/webhook-secret';
import { asyncPredictRequestSchema } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { NewAsyncRequest } from '../../src/store/store';

describe('async predictions', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-async-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("fills in Baseten's defaults and refuses what is out of bounds", () => {
    assert.deepEqual(asyncPredictRequestSchema.parse({ model_input: { a: 1 } }), {
      model_input: { a: 1 },
      priority: 0,
      max_time_in_queue_seconds: 600,
      inference_retry_config: { max_attempts: 3, initial_delay_ms: 1000, max_delay_ms: 5000 },
    });
    assert.deepEqual(asyncPredictRequestSchema.parse({ model_input: {}, inference_retry_config: { max_attempts: 1 } }).inference_retry_config, {
      max_attempts: 1,
      initial_delay_ms: 1000,
      max_delay_ms: 5000,
    });
    for (const bad of [
      {},
      { model_input: [] },
      { model_input: {}, priority: 3 },
      { model_input: {}, webhook_endpoint: 'file:///etc/passwd' },
      { model_input: {}, webhook_endpoint: 'https://user:pa55word@hooks.example.com/x' },
      { model_input: {}, extra: 1 },
    ]) {
      assert.equal(asyncPredictRequestSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });

  it('signs with the configured secret, or one created once in GANTRY_HOME (mode 0600) and kept', () => {
    const file = path.join(dir, 'home', 'webhook-secret');
    assert.equal(loadWebhookSecret('configured-secret-0123456789', file), 'configured-secret-0123456789');
    assert.equal(fs.existsSync(file), false, 'no file when the secret is configured');
    const created = loadWebhookSecret(undefined, file);
    assert.match(created, /^whsec_[A-Za-z0-9_-]{40,}$/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(loadWebhookSecret(undefined, file), created, 'the same secret on the next use');
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['webhook-secret'], 'nothing left aside');
    const body = '{"request_id":"r1"}';
    assert.equal(signWebhookBody(created, body), `v1=${createHmac('sha256', created).update(body).digest('hex')}`);
  });

  it("maps gateway answers to Baseten's error codes and the output to the webhook data", () => {
    assert.deepEqual([400, 404, 413, 500, 502, 503, 504].map(errorCodeOf), [
      'MODEL_INVALID_INPUT',
      'MODEL_DOES_NOT_EXIST',
      'MODEL_INVALID_INPUT',
      'MODEL_PREDICT_ERROR',
      'INTERNAL_SERVER_ERROR',
      'MODEL_UNAVAILABLE',
      'MODEL_PREDICT_TIMEOUT',
    ]);
    assert.deepEqual(webhookData('{"a":[1]}'), { a: [1] });
    assert.equal(webhookData('plain text'), 'plain text');
    assert.equal(webhookData(null), null);
  });

  it('dispatches by priority then age up to the free slots, in one compare-and-set transaction', async () => {
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    try {
      const t0 = Date.now() - 120_000;
      const request = (id: string, priority: number, second: number, deploymentId = 'd1', environment: string | null = null): NewAsyncRequest => ({
        id,
        model_id: 'm',
        environment,
        deployment_id: deploymentId,
        webhook_endpoint: null,
        webhook_status: 'NO_WEBHOOK_PROVIDED',
        priority,
        max_time_in_queue_seconds: 600,
        retry_config: { max_attempts: 3, initial_delay_ms: 1000, max_delay_ms: 5000 },
        input: '{}',
        workflow_id: `async:${id}`,
        created_at: new Date(t0 + second * 1000).toISOString(),
        expires_at: new Date(t0 + 600_000).toISOString(),
      });
      await store.createAsyncRequest(request('old-low', 2, 0));
      await store.createAsyncRequest(request('old-mid', 1, 1));
      await store.createAsyncRequest(request('new-high', 0, 2));
      await store.createAsyncRequest(request('newer-high', 0, 3));
      await store.createAsyncRequest(request('other', 0, 0, 'd2', 'production'));
      // Past its expiry (the workflow has yet to mark it EXPIRED): never dispatched.
      await store.createAsyncRequest({ ...request('expired', 0, -1), expires_at: new Date(Date.now() - 1000).toISOString() });
      assert.deepEqual(
        (await store.dispatchAsyncRequests('d1', 2)).map((r) => r.id),
        ['new-high', 'newer-high'],
      );
      assert.deepEqual(await store.dispatchAsyncRequests('d1', 2), [], 'two in progress fill two slots');
      assert.deepEqual(
        (await store.dispatchAsyncRequests('d1', 3)).map((r) => r.id),
        ['old-mid'],
      );
      assert.equal(await store.transitionAsyncRequest('old-mid', ['QUEUED'], { status: 'CANCELED' }), false, 'a cancel loses to the dispatch');
      assert.equal(await store.transitionAsyncRequest('old-low', ['QUEUED'], { status: 'CANCELED' }), true);
      assert.equal(await store.transitionAsyncRequest('expired', ['QUEUED'], { status: 'EXPIRED' }), true);
      assert.deepEqual(
        (await store.countAsyncRequests()).sort((a, b) => a.deployment_id.localeCompare(b.deployment_id)),
        [
          { deployment_id: 'd1', queued: 0, in_progress: 3 },
          { deployment_id: 'd2', queued: 1, in_progress: 0 },
        ],
      );
      assert.equal(await store.repointQueuedAsyncRequests('m', 'production', 'd2', 'd3'), 1);
      assert.deepEqual(await store.listAsyncQueueGroups(), [{ model_id: 'm', deployment_id: 'd3', environment: 'production', queued: 1 }]);
      await store.transitionAsyncRequest('new-high', ['IN_PROGRESS'], { status: 'SUCCEEDED', output: '{"x":1}', ended_at: new Date(t0).toISOString() });
      await store.transitionAsyncRequest('newer-high', ['IN_PROGRESS'], { status: 'SUCCEEDED', output: '{"x":2}', ended_at: new Date().toISOString() });
      await store.transitionAsyncRequest('old-mid', ['IN_PROGRESS'], { status: 'SUCCEEDED', output: '{"x":0}', webhook_status: 'PENDING', ended_at: new Date(t0).toISOString() });
      assert.equal(await store.clearAsyncOutputs(new Date(Date.now() - 60_000).toISOString()), 1);
      assert.equal((await store.getAsyncRequest('old-mid'))?.output, '{"x":0}', 'kept while its webhook is still to be delivered');
      assert.equal((await store.getAsyncRequest('new-high'))?.output, null, 'past retention: output cleared, record kept');
      assert.equal((await store.getAsyncRequest('newer-high'))?.output, '{"x":2}');
      assert.deepEqual(
        (await store.listUnfinishedAsyncRequests()).map((r) => r.id),
        ['other'],
      );
    } finally {
      await store.close();
    }
  });
});
