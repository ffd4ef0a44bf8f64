/**
 * Logs on the real stack (docs/operations.md#logs): a request id sent to the gateway comes back,
 * is in the gateway's access log line and reaches the replica (whose failure line names it); the
 * API does the same; a deployment's log rotates by size, keeps GANTRY_DEPLOYMENT_LOG_FILES
 * rotated files, and its tail and live follow go on across rotations; every line every process
 * printed is a JSON log line with the same keys.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LOG_LINE_KEYS } from '../../src/logging/logger';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { TestStack, type LogLine } from '../helpers/stack';

const fixture = path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'streaming');
const MAX_BYTES = 8192;
const ROTATED_FILES = 3;

interface Deployment {
  id: string;
  model_id: string;
  status: string;
}

interface Entry {
  source: string;
  message: string;
}

/** Follows a deployment's log through the API (`?follow=true`), collecting every entry sent. */
async function followThroughApi(url: string, apiKey: string): Promise<{ entries: Entry[]; stop: () => void }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Api-Key ${apiKey}` }, signal: controller.signal });
  assert.equal(response.status, 200);
  const entries: Entry[] = [];
  const decoder = new TextDecoder();
  let buffered = '';
  void (async () => {
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        const events = buffered.split('\n\n');
        buffered = events.pop() ?? '';
        for (const event of events) {
          const data = event
            .split('\n')
            .filter((line) => line.startsWith('data: '))
            .map((line) => line.slice('data: '.length))
            .join('\n');
          if (data) entries.push(...(JSON.parse(data) as { entries: Entry[] }).entries);
        }
      }
    } catch {
      // stopped
    }
  })();
  return { entries, stop: () => controller.abort() };
}

describe('logs: request ids, JSON lines and deployment log rotation (real stack)', function () {
  this.timeout(300_000);
  let stack: TestStack;
  let deployment: Deployment;
  const logsUrl = (query: string): string => `${stack.apiUrl}/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?${query}`;
  const predictPath = (): string => `/models/${deployment.model_id}/deployment/${deployment.id}/predict`;

  before(async () => {
    stack = await TestStack.create({ GANTRY_DEPLOYMENT_LOG_MAX_BYTES: String(MAX_BYTES), GANTRY_DEPLOYMENT_LOG_FILES: String(ROTATED_FILES) });
    await stack.start();
    const pushed = await stack.cli(['push', fixture, '--wait', '--output', 'json']);
    assert.equal(pushed.code, 0, `${pushed.stdout}\n${pushed.stderr}`);
    deployment = JSON.parse(pushed.stdout) as Deployment;
    assert.equal(deployment.status, 'ACTIVE');
  });

  after(async () => {
    await stack?.destroy();
  });

  it("returns a gateway request's x-request-id, logs it and passes it to the replica", async () => {
    const response = await fetch(`${stack.gatewayUrl}${predictPath()}?note=not-logged`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${stack.apiKey}`, 'content-type': 'application/json', 'x-request-id': 'abc-123' },
      body: JSON.stringify({ chunks: 2, gap: 0, fail_at: 1 }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-request-id'), 'abc-123');
    await response.text();

    const line = await eventually("the gateway's access log line", async () => stack.logLines().find((l) => l.process === 'node' && l.requestId === 'abc-123'));
    assert.deepEqual(
      { level: line.level, method: line.method, path: line.path, status: line.status, modelId: line.modelId, deploymentId: line.deploymentId },
      { level: 'info', method: 'POST', path: predictPath(), status: 200, modelId: deployment.model_id, deploymentId: deployment.id },
    );
    assert.equal(typeof line.durationMs, 'number');
    assert.ok(!stack.log.includes('not-logged'), 'the query is not logged');

    // The replica got it: its failure line (in the deployment's log) names the request.
    const replicaLine = await eventually("the replica's line with the request id", async () => {
      const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=200`);
      return (logs.body.entries as Entry[]).find((entry) => entry.message.includes('(request abc-123)'));
    });
    assert.match(replicaLine.source, /^replica-/);
    assert.match(
      replicaLine.message,
      /^predict raised RuntimeError: the model failed at chunk 1 mid-stream after 1 chunk\(s\); the error is the stream's last line \(request abc-123\)/,
    );

    // One it made up itself is answered, passed on and logged the same way.
    const made = await fetch(`${stack.gatewayUrl}${predictPath()}`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${stack.apiKey}`, 'content-type': 'application/json', 'x-request-id': 'not acceptable' },
      body: JSON.stringify({ mode: 'json' }),
    });
    assert.equal(made.status, 200);
    const madeId = made.headers.get('x-request-id')!;
    assert.match(madeId, /^[0-9a-f-]{36}$/);
    await eventually('its access log line', async () => stack.logLines().find((l) => l.process === 'node' && l.requestId === madeId && l.status === 200));
  });

  it("returns an API request's x-request-id and logs it with the route", async () => {
    const response = await fetch(`${stack.apiUrl}/v1/models/${deployment.model_id}/deployments/${deployment.id}`, {
      headers: { authorization: `Api-Key ${stack.apiKey}`, 'x-request-id': 'api-req-7' },
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-request-id'), 'api-req-7');
    const line = await eventually("the API's access log line", async () => stack.logLines().find((l) => l.process === 'api' && l.requestId === 'api-req-7'));
    assert.deepEqual(
      { method: line.method, path: line.path, route: line.route, status: line.status },
      { method: 'GET', path: `/v1/models/${deployment.model_id}/deployments/${deployment.id}`, route: '/v1/models/:model/deployments/:ref', status: 200 },
    );
  });

  it('rotates the deployment log by size, keeps the rotated files asked for, and tails and follows across rotations', async () => {
    const follower = await followThroughApi(logsUrl('follow=true&tail=1'), stack.apiKey);
    try {
      // Each failed stream writes a traceback of several lines to the replica's log.
      const count = 120;
      for (let i = 0; i < count; i++) {
        const response = await fetch(`${stack.gatewayUrl}${predictPath()}`, {
          method: 'POST',
          headers: { authorization: `Api-Key ${stack.apiKey}`, 'content-type': 'application/json', 'x-request-id': `burst-${i}` },
          body: JSON.stringify({ chunks: 2, gap: 0, fail_at: 0 }),
        });
        await response.text();
      }
      const logsDir = path.join(stack.home, 'logs');
      const files = (): string[] => fs.readdirSync(logsDir).filter((name) => name.startsWith(`${deployment.id}.`));
      const tagged = (entries: Entry[]): number[] => entries.flatMap((entry) => /\(request burst-(\d+)\)/.exec(entry.message)?.[1] ?? []).map(Number);
      await eventually('the last failure in the log', async () => {
        const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=5`);
        return tagged(logs.body.entries).includes(count - 1) ? true : undefined;
      });
      const rotated = files().filter((name) => /\.\d+\.jsonl$/.test(name));
      assert.equal(rotated.length, ROTATED_FILES, `files: ${files().join(', ')}`);
      for (const name of rotated) assert.ok(fs.statSync(path.join(logsDir, name)).size >= MAX_BYTES);
      assert.ok(Number(/\.(\d+)\.jsonl$/.exec(rotated.at(-1)!)![1]) > ROTATED_FILES, 'older rotated files were removed');

      // The tail spans the rotated files: more lines than the current file has, newest last.
      // (No current file at all right after an append filled it and rotated it.)
      const currentFile = path.join(logsDir, `${deployment.id}.jsonl`);
      const current = fs.existsSync(currentFile) ? fs.readFileSync(currentFile, 'utf8').split('\n').filter(Boolean).length : 0;
      const tail = (await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=100000`)).body.entries as Entry[];
      assert.ok(tail.length > current, `the tail (${tail.length} entries) reaches into the rotated files (the current one has ${current})`);
      const tailIds = tagged(tail);
      assert.deepEqual(
        tailIds,
        [...tailIds].sort((a, b) => a - b),
        'in order',
      );
      assert.equal(tailIds.at(-1), count - 1);

      // The follower saw every failure, once each and in order, across every rotation.
      await eventually('the follower to reach the last failure', async () => (tagged(follower.entries).includes(count - 1) ? true : undefined));
      const problems = stack.logLines().filter((line) => line.process === 'api' && line.level !== 'info' && line.level !== 'debug');
      assert.deepEqual(
        tagged(follower.entries),
        Array.from({ length: count }, (_, i) => i),
        `API warnings: ${JSON.stringify(problems)}; files: ${files().join(', ')}`,
      );
    } finally {
      follower.stop();
    }
  });

  it('prints every line of every process as JSON with the same keys', async () => {
    await stack.stop();
    const lines: LogLine[] = stack.logLines();
    for (const line of lines) for (const key of LOG_LINE_KEYS) assert.equal(typeof line[key], 'string', `${key} in ${JSON.stringify(line)}`);
    // API, node and worker print nothing but their own log lines (nothing the supervisor had to wrap).
    const plain = lines.filter((line) => ['api', 'node', 'worker'].includes(line.process) && line.stream !== undefined);
    assert.deepEqual(plain, [], 'plain text printed by api, node or worker');
    const processes = new Set(lines.map((line) => line.process));
    for (const name of ['gantry', 'api', 'node', 'worker']) assert.ok(processes.has(name), `${name} printed: ${[...processes].join(', ')}`);
    assert.ok(stack.logged(/^API listening on /, 'api'));
    assert.ok(stack.logged(/^node local: gateway listening on /, 'node'));
    assert.ok(stack.logged(/^worker polling task queue/, 'worker'));
    assert.ok(stack.logged(/^build succeeded/, 'worker'), "the build's start and end are in the worker's log");
    assert.ok(stack.logged(/^Gantry is up\.$/, 'gantry'));
    assert.ok(stack.logged(/^stopped$/, 'gantry'));
    assert.ok(lines.every((line) => ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(line.level)));
  });
});
