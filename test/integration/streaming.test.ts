/**
 * Streaming end to end on the real stack: a model whose predict is a generator streams each
 * chunk through the gateway (and the API's playground route, and `gantry predict`) as the
 * model yields it; an error mid-stream ends the stream visibly and is in the deployment's log.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { replicaProcesses } from '../helpers/processes';
import { TestStack } from '../helpers/stack';

const fixture = path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'streaming');

interface Deployment {
  id: string;
  model_id: string;
  status: string;
}

/** One POST read as it arrives: each `data` event with the time (ms since the epoch) it came. */
interface Arrivals {
  status: number;
  headers: http.IncomingHttpHeaders;
  pieces: { at: number; text: string }[];
}

/** Posts `body` to `url` and records the arrival of every piece of the answer. */
function postAndRecord(url: string, apiKey: string, body: unknown, stopAfter?: number): Promise<Arrivals> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const request = http.request(
      url,
      { method: 'POST', headers: { authorization: `Api-Key ${apiKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (answer) => {
        const result: Arrivals = { status: answer.statusCode ?? 0, headers: answer.headers, pieces: [] };
        answer.on('data', (chunk: Buffer) => {
          result.pieces.push({ at: Date.now(), text: chunk.toString('utf8') });
          if (stopAfter !== undefined && result.pieces.length >= stopAfter) {
            request.destroy(); // the client goes away mid-stream
            resolve(result);
          }
        });
        answer.once('end', () => resolve(result));
        answer.once('error', reject);
      },
    );
    request.once('error', (error) => (request.destroyed && stopAfter !== undefined ? undefined : reject(error)));
    request.end(payload);
  });
}

/** The JSON lines of a streamed body. */
function lines(text: string): any[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
}

describe('streaming: a generator model streams through the gateway, the API and the CLI (real stack)', function () {
  this.timeout(300_000);
  let stack: TestStack;
  let deployment: Deployment;

  const gatewayPath = (): string => `/models/${deployment.model_id}/deployment/${deployment.id}/predict`;

  async function logText(): Promise<string> {
    const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=500`);
    assert.equal(logs.status, 200);
    return (logs.body.entries as { message: string }[]).map((entry) => entry.message).join('\n');
  }

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    const pushed = await stack.cli(['push', fixture, '--wait', '--output', 'json']);
    assert.equal(pushed.code, 0, `${pushed.stdout}\n${pushed.stderr}`);
    deployment = JSON.parse(pushed.stdout) as Deployment;
    assert.equal(deployment.status, 'ACTIVE');
  });

  after(async () => {
    await stack?.destroy();
  });

  it('passes each chunk to the client through the gateway as the model yields it', async () => {
    const chunks = 5;
    const gap = 400;
    const answer = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { chunks, gap: gap / 1000 });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['transfer-encoding'], 'chunked');
    assert.equal(answer.headers['content-length'], undefined);
    assert.equal(answer.headers['content-type'], 'application/octet-stream');
    assert.equal(answer.headers['x-gantry-deployment-id'], deployment.id);
    // Every chunk arrived on its own, complete and in order.
    assert.equal(answer.pieces.length, chunks, `pieces: ${JSON.stringify(answer.pieces)}`);
    const received = answer.pieces.map((piece) => lines(piece.text));
    for (const [index, pieceLines] of received.entries())
      assert.deepEqual(
        pieceLines.map((line) => line.index),
        [index],
      );
    // The first chunk reached the client before the model yielded the last one.
    const lastYieldedAt = received[chunks - 1]![0].yielded_at * 1000;
    const firstArrival = answer.pieces[0]!.at;
    const lastArrival = answer.pieces[chunks - 1]!.at;
    assert.ok(firstArrival < lastYieldedAt, `first chunk at ${firstArrival}, last yielded at ${lastYieldedAt}`);
    assert.ok(lastArrival - firstArrival >= (chunks - 2) * gap, `arrivals ${answer.pieces.map((piece) => piece.at - firstArrival).join(', ')} ms`);
  });

  it('passes the stream on chunk by chunk through the API playground route too', async () => {
    const route = `/v1/models/${deployment.model_id}/deployments/${deployment.id}/predict`;
    const answer = await postAndRecord(`${stack.apiUrl}${route}`, stack.apiKey, { chunks: 3, gap: 0.4 });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['x-gantry-deployment-id'], deployment.id);
    assert.equal(answer.pieces.length, 3, `pieces: ${JSON.stringify(answer.pieces)}`);
    assert.deepEqual(
      lines(answer.pieces.map((piece) => piece.text).join('')).map((line) => line.index),
      [0, 1, 2],
    );
    assert.ok(answer.pieces[2]!.at - answer.pieces[0]!.at >= 400);
  });

  it('gantry predict prints each chunk as it arrives', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'gantry.js'), 'predict', 'fixture-streaming', '--data', '{"chunks": 4, "gap": 0.5}'], {
      env: { ...stack.env, GANTRY_URL: stack.apiUrl, GANTRY_GATEWAY_URL: stack.gatewayUrl, GANTRY_API_KEY: stack.apiKey },
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let firstOutputAt: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      firstOutputAt ??= Date.now();
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    const exitedAt = Date.now();
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      lines(stdout).map((line) => line.index),
      [0, 1, 2, 3],
    );
    assert.ok(stdout.endsWith('}\n'));
    // The first line was printed while the model was still yielding (three gaps of 0.5 s to go).
    assert.ok(exitedAt - firstOutputAt! >= 1000, `first output ${exitedAt - firstOutputAt!} ms before the exit`);
  });

  it('ends a stream whose model raises with the error as the last line, and logs it', async () => {
    const answer = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { chunks: 4, gap: 0.1, fail_at: 2 });
    assert.equal(answer.status, 200);
    const received = lines(answer.pieces.map((piece) => piece.text).join(''));
    assert.deepEqual(
      received.slice(0, 2).map((line) => line.index),
      [0, 1],
    );
    assert.deepEqual(received[2], { error: 'RuntimeError: the model failed at chunk 2' });
    assert.equal(received.length, 3);
    const log = await eventually('the error in the deployment log', async () => {
      const text = await logText();
      return text.includes('predict raised RuntimeError: the model failed at chunk 2 mid-stream after 2 chunk(s)') ? text : undefined;
    });
    assert.match(log, /raise RuntimeError\("the model failed at chunk %d" % index\)/);

    const cli = await stack.cli(['predict', 'fixture-streaming', '--data', '{"chunks": 3, "gap": 0, "fail_at": 1}']);
    assert.equal(cli.code, 0); // the status (200) was sent before the model failed
    assert.deepEqual(lines(cli.stdout)[1], { error: 'RuntimeError: the model failed at chunk 1' });
  });

  it('closes the generator of a client that goes away, and the replica serves the next stream', async () => {
    const partial = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { chunks: 100, gap: 0.1 }, 1);
    assert.equal(partial.pieces.length, 1);
    await eventually('the replica to see the client go', async () => ((await logText()).includes('the client went away after') ? true : undefined));
    // predict_concurrency is 1: the next stream runs only if the slot was given back.
    const next = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { chunks: 2, gap: 0 });
    assert.equal(next.status, 200);
    assert.deepEqual(
      lines(next.pieces.map((piece) => piece.text).join('')).map((line) => line.index),
      [0, 1],
    );
  });

  it('gantry predict says so and exits 1 when the stream is cut (its replica killed mid-stream)', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'gantry.js'), 'predict', 'fixture-streaming', '--data', '{"chunks": 50, "gap": 0.2}'], {
      env: { ...stack.env, GANTRY_URL: stack.apiUrl, GANTRY_GATEWAY_URL: stack.gatewayUrl, GANTRY_API_KEY: stack.apiKey },
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const [replica] = replicaProcesses(stack);
    assert.ok(replica, 'a replica process');
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout === '') process.kill(replica.pid, 'SIGKILL');
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 1);
    assert.match(stderr, /^error: the answer stopped before its end, after \d+ bytes/);
    assert.equal(lines(stdout)[0].index, 0);
    assert.ok(lines(stdout).length < 50);
    // The node restarts the replica; the next stream is served in full.
    const next = await eventually(
      'a stream from the restarted replica',
      async () => {
        const answer = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { chunks: 2, gap: 0 });
        return answer.status === 200 ? answer : undefined;
      },
      60_000,
    );
    assert.deepEqual(
      lines(next.pieces.map((piece) => piece.text).join('')).map((line) => line.index),
      [0, 1],
    );
  });

  it('answers a non-streaming predict with JSON and a content-length as before', async () => {
    const answer = await postAndRecord(`${stack.gatewayUrl}${gatewayPath()}`, stack.apiKey, { mode: 'json' });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.headers['transfer-encoding'], undefined);
    const body = answer.pieces.map((piece) => piece.text).join('');
    assert.equal(answer.headers['content-length'], String(Buffer.byteLength(body)));
    assert.equal(answer.headers['x-gantry-deployment-id'], deployment.id);
    assert.deepEqual(JSON.parse(body), { chunks: 5, streamed: false }); // preprocess filled in the default
  });
});
