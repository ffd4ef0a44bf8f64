import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runGantryCli, type CliResult } from '../helpers/stack';

/** What the stand-in server saw of one request. */
interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

/** Runs the real CLI against `url` as both API and gateway. */
function cli(url: string, args: string[]): Promise<CliResult> {
  return runGantryCli(args, { ...process.env, GANTRY_URL: url, GANTRY_GATEWAY_URL: url, GANTRY_API_KEY: 'cli-test-key-0123456789', GANTRY_CONFIG_FILE: '/nonexistent/cli.json' });
}

describe('CLI: predict --async, async status and cancel, wake (against a stand-in API and gateway)', function () {
  this.timeout(30_000);
  const seen: Seen[] = [];
  const view = {
    request_id: 'r1',
    model_id: 'm1',
    deployment_id: 'd1',
    status: 'FAILED',
    webhook_status: 'FAILED',
    created_at: '2026-12-02T09:00:00.000Z',
    status_at: '2026-12-02T09:00:05.000Z',
    errors: [{ code: 'MODEL_PREDICT_ERROR', message: 'boom' }],
    output: { partial: true },
  };
  const answers: Record<string, [number, unknown]> = {
    'GET /v1/models/sleepy': [200, { id: 'm1', name: 'sleepy' }],
    'GET /v1/models/m1/deployments/blue': [200, { id: 'd1', name: 'blue' }],
    'POST /models/m1/production/async_predict': [201, { request_id: 'r1' }],
    'POST /models/m1/deployment/d1/async_predict': [201, { request_id: 'r2' }],
    'GET /v1/async_requests/r1': [200, view],
    'GET /v1/async_requests/gone': [404, { error: { code: 'not_found', message: 'async request gone not found' } }],
    'DELETE /models/m1/async_request/r1': [200, { request_id: 'r1', canceled: true, message: 'canceled' }],
    'DELETE /models/m1/async_request/r2': [200, { request_id: 'r2', canceled: false, message: 'the request is IN_PROGRESS; only a queued request can be canceled' }],
    'POST /models/m1/environments/staging/wake': [
      202,
      {
        model_id: 'm1',
        deployments: [
          { id: 'd1', name: 'blue', woken: true },
          { id: 'd2', name: 'green', woken: false },
        ],
      },
    ],
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body: Buffer.concat(chunks).toString() });
      const [status, body] = answers[`${req.method} ${req.url}`] ?? [404, { error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } }];
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  let url = '';

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(() => {
    seen.length = 0;
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('predict --async posts the model input and the options to async_predict and prints the request_id', async () => {
    const result = await cli(url, [
      'predict',
      'sleepy',
      '--async',
      '--data',
      '{"x":1}',
      '--webhook',
      'http://127.0.0.1:9/hook',
      '--priority',
      '1',
      '--max-time-in-queue',
      '60',
      '-v',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'r1\n');
    assert.equal(result.stderr, 'POST /models/m1/production/async_predict → queued\n');
    const posted = seen.find((s) => s.method === 'POST')!;
    assert.equal(posted.authorization, 'Api-Key cli-test-key-0123456789');
    assert.deepEqual(JSON.parse(posted.body), { model_input: { x: 1 }, webhook_endpoint: 'http://127.0.0.1:9/hook', priority: 1, max_time_in_queue_seconds: 60 });

    const byDeployment = await cli(url, ['predict', 'sleepy', '--async', '--deployment', 'blue', '--data', '{}']);
    assert.equal(byDeployment.stdout, 'r2\n');
    assert.deepEqual(JSON.parse(seen.at(-1)!.body), { model_input: {} });
  });

  it('refuses async options without --async, and a priority that is not a whole number, before sending anything', async () => {
    const webhook = await cli(url, ['predict', 'sleepy', '--data', '{}', '--webhook', 'http://x']);
    assert.equal(webhook.code, 1);
    assert.equal(webhook.stderr, 'error: --webhook, --priority and --max-time-in-queue go with --async\n');
    const priority = await cli(url, ['predict', 'sleepy', '--async', '--data', '{}', '--priority', 'high']);
    assert.equal(priority.code, 1);
    assert.match(priority.stderr, /--priority <n>' argument 'high' is invalid\. must be a whole number/);
    assert.equal(seen.length, 0);
  });

  it('async status prints the view, or the raw JSON with --json', async () => {
    const text = await cli(url, ['async', 'status', 'r1']);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(
      text.stdout,
      [
        'request    r1',
        'model      m1',
        'deployment d1',
        'status     FAILED',
        'webhook    FAILED',
        'created    2026-12-02T09:00:00.000Z',
        'status at  2026-12-02T09:00:05.000Z',
        'errors     MODEL_PREDICT_ERROR: boom',
        'output     {"partial":true}',
        '',
      ].join('\n'),
    );
    const json = await cli(url, ['async', 'status', 'r1', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), view);
    const missing = await cli(url, ['async', 'status', 'gone']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: 404 not_found: async request gone not found\n');
  });

  it('async cancel deletes through the model path; exits 1 when the request could not be canceled', async () => {
    const canceled = await cli(url, ['async', 'cancel', 'r1', '--model', 'sleepy']);
    assert.equal(canceled.code, 0, canceled.stderr);
    assert.equal(canceled.stdout, 'canceled r1: canceled\n');
    const refused = await cli(url, ['async', 'cancel', 'r2', '-m', 'sleepy']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'not canceled: the request is IN_PROGRESS; only a queued request can be canceled\n');
    assert.deepEqual(
      seen.filter((s) => s.method === 'DELETE').map((s) => s.url),
      ['/models/m1/async_request/r1', '/models/m1/async_request/r2'],
    );
  });

  it('wake posts to the environment wake path and says what is waking', async () => {
    const result = await cli(url, ['wake', 'sleepy', '--environment', 'staging']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'deployment blue (d1) is waking up\ndeployment green (d2) is already awake or waking up\n');
    assert.equal(seen.at(-1)!.url, '/models/m1/environments/staging/wake');
    const both = await cli(url, ['wake', 'sleepy', '-e', 'staging', '-d', 'blue']);
    assert.equal(both.code, 1);
    assert.equal(both.stderr, 'error: give --deployment or --environment, not both\n');
  });
});
