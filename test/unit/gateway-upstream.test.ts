import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../src/auth/key-hash';
import { Gateway, MAX_BODY_BYTES } from '../../src/node/gateway/gateway';
import { RETRYABLE_BODY_BYTES } from '../../src/node/gateway/proxy';
import { predictTimeoutOf } from '../../src/node/routing-snapshot';
import { DEFAULT_AUTOSCALING, DEFAULT_PREDICT_TIMEOUT_SECONDS, modelConfigSchema, type ModelConfig } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { pushReplicas, pushRouting } from '../helpers/gateway-feed';
import { eventually } from '../helpers/ports';
import { NEVER_ANSWER, StandInReplica as StandIn } from '../helpers/stand-in-replica';
import { send, startRequest } from './support/http';

const KEY = 'gateway-test-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };

/** Every stand-in started, so that each test stops its own. */
const started: StandIn[] = [];

/** Starts a stand-in that never answers unless told otherwise, remembered for the test's cleanup. */
async function startStandIn(id: string): Promise<StandIn> {
  const standIn = new StandIn(NEVER_ANSWER);
  started.push(standIn);
  return standIn.start(id);
}

function config(runtime: Record<string, unknown>): ModelConfig {
  return modelConfigSchema.parse({ runtime });
}

describe('Gateway: upstream timeouts and clients that leave', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let gateway: Gateway;
  let base: string;
  const replicas = new Map<string, StandIn[]>();
  /** Makes `standIns` the deployment's ready replicas, pushed into the gateway as the node does. */
  const setReplicas = (deploymentId: string, standIns: StandIn[]): void => {
    replicas.set(deploymentId, standIns);
    pushReplicas(gateway, replicas);
  };
  const ids: Record<'quick' | 'patient' | 'idle', string> = { quick: '', patient: '', idle: '' };
  let modelId = '';
  const url = (deploymentId: string): string => `${base}/models/${modelId}/deployment/${deploymentId}/predict`;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-gateway-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'test', prefix: 'gateway', secretHash: hashApiKey(KEY), role: 'admin' });
    modelId = (await store.findOrCreateModel('timeouts')).id;
    // quick: predict_timeout_seconds 1. patient: a config from before the key existed (the default).
    // idle: no replica ever, so its requests wait in the queue.
    const stored: Record<keyof typeof ids, ModelConfig> = {
      quick: config({ predict_timeout_seconds: 1 }),
      patient: { ...config({}), runtime: { predict_concurrency: 1 } as ModelConfig['runtime'] },
      idle: config({}),
    };
    for (const name of Object.keys(ids) as (keyof typeof ids)[]) {
      const deployment = await store.createDeployment({ model_id: modelId, name, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      await store.updateDeployment(deployment.id, { config: stored[name], env_key: 'e', status: 'ACTIVE', desired_replicas: 1 });
      ids[name] = deployment.id;
    }
    gateway = new Gateway({
      log: () => {},
    });
    await pushRouting(gateway, store);
    base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((standIn) => standIn.stop()));
    replicas.clear();
    pushReplicas(gateway, replicas);
  });

  after(async () => {
    await gateway.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads predict_timeout_seconds from the config, with the default for configs without it', async () => {
    assert.equal(predictTimeoutOf({ config: config({ predict_timeout_seconds: 1 }) }), 1);
    assert.equal(predictTimeoutOf({ config: (await store.getDeployment(ids.patient))!.config }), DEFAULT_PREDICT_TIMEOUT_SECONDS);
    assert.equal(predictTimeoutOf({ config: null }), DEFAULT_PREDICT_TIMEOUT_SECONDS);
    assert.equal(config({}).runtime.predict_timeout_seconds, 600);
    assert.equal(modelConfigSchema.parse({}).runtime.predict_timeout_seconds, 600);
    for (const bad of [0, 3601, 1.5, '10']) assert.equal(modelConfigSchema.safeParse({ runtime: { predict_timeout_seconds: bad } }).success, false, String(bad));
  });

  it('answers 504 upstream_timeout when no replica answers in time, closes the request to it, and tries no other', async () => {
    const standIns = [await startStandIn('quick-a'), await startStandIn('quick-b')];
    setReplicas(ids.quick, standIns); // both never answer
    const answer = await send(url(ids.quick), { body: '{}', headers: AUTH });
    assert.equal(answer.status, 504);
    assert.deepEqual(JSON.parse(answer.body), {
      error: { code: 'upstream_timeout', message: `deployment quick (${ids.quick}) did not answer within 1 s` },
    });
    assert.equal(
      standIns.reduce((n, s) => n + s.received, 0),
      1,
    );
    await eventually('the upstream request closed', async () => (standIns.reduce((n, s) => n + s.closedEarly, 0) === 1 ? true : undefined));
    assert.equal(
      standIns.reduce((n, s) => n + s.answered, 0),
      0,
    );
    assert.equal(gateway.inFlight(ids.quick), 0);
    assert.deepEqual(
      standIns.map((s) => gateway.replicaInFlight(s.replica.id)),
      [0, 0],
    );
  });

  it('still tries another replica when one refuses the connection', async () => {
    const refusing = await startStandIn('quick-refusing');
    const working = await startStandIn('quick-working');
    working.behaviour = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    setReplicas(ids.quick, [refusing, working]);
    await refusing.refuse(); // its port now refuses
    const answers = await Promise.all([0, 1, 2, 3].map(() => send(url(ids.quick), { body: '{}', headers: AUTH })));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    assert.equal(working.answered, 4);
  });

  it('cuts an answer whose body stalls for the timeout, and lets a slow but steady one finish', async () => {
    const stalling = await startStandIn('quick-stalling');
    stalling.behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n'); // and nothing more
    };
    setReplicas(ids.quick, [stalling]);
    await assert.rejects(send(url(ids.quick), { body: '{}', headers: AUTH }));
    await eventually('the stalled answer closed', async () => (stalling.closedEarly === 1 ? true : undefined));
    assert.equal(gateway.inFlight(ids.quick), 0);

    const steady = await startStandIn('quick-steady');
    steady.behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${sent}\n`);
        if (++sent === 8) {
          clearInterval(timer);
          res.end();
        }
      }, 200); // 1.6 s in all, 0.2 s between chunks, against a 1 s timeout
    };
    setReplicas(ids.quick, [steady]);
    const answer = await send(url(ids.quick), { body: '{}', headers: AUTH });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.split('\n').filter(Boolean).length, 8);
  });

  it('closes the request to the replica when the client disconnects', async () => {
    const standIn = await startStandIn('patient-a'); // never answers; the timeout is 600 s
    setReplicas(ids.patient, [standIn]);
    const request = startRequest(url(ids.patient), '{}', AUTH);
    await eventually('the replica got the request', async () => (standIn.received === 1 ? true : undefined));
    assert.equal(gateway.inFlight(ids.patient), 1);
    assert.equal(gateway.replicaInFlight(standIn.replica.id), 1);
    request.destroy();
    await eventually('the upstream request closed', async () => (standIn.closedEarly === 1 ? true : undefined));
    assert.equal(standIn.answered, 0);
    await eventually('nothing in flight', async () => (gateway.inFlight(ids.patient) === 0 && gateway.replicaInFlight(standIn.replica.id) === 0 ? true : undefined));
  });

  it('takes a waiting request out of the queue when its client disconnects', async () => {
    const requests = [0, 1, 2].map(() => startRequest(url(ids.idle), '{}', AUTH));
    await eventually('three requests queued', async () => (gateway.queued(ids.idle) === 3 && gateway.inFlight(ids.idle) === 3 ? true : undefined));
    requests[0]!.destroy();
    await eventually('two left', async () => (gateway.queued(ids.idle) === 2 && gateway.inFlight(ids.idle) === 2 ? true : undefined));
    for (const request of requests.slice(1)) request.destroy();
    await eventually('the queue empty', async () => (gateway.queued(ids.idle) === 0 && gateway.inFlight(ids.idle) === 0 ? true : undefined));
  });

  it('streams a large request body to the replica: the replica reads its first bytes before the client has sent the last', async () => {
    let bytesSeen = 0;
    const echo = await startStandIn('patient-streaming');
    echo.behaviour = (res, req) => {
      req.on('data', (chunk: Buffer) => (bytesSeen += chunk.length));
      req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes: bytesSeen })));
    };
    setReplicas(ids.patient, [echo]);
    const part = Buffer.alloc(RETRYABLE_BODY_BYTES * 2, 'a');
    for (const framing of ['declared', 'chunked'] as const) {
      bytesSeen = 0;
      const headers: Record<string, string> = { ...AUTH, 'content-type': 'application/octet-stream' };
      if (framing === 'declared') headers['content-length'] = String(part.length * 2);
      const request = http.request(url(ids.patient), { method: 'POST', agent: false, headers });
      const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
        request.once('response', (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.once('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        });
        request.once('error', reject);
      });
      request.write(part);
      // The second half is held back until the replica has read from the first.
      await eventually(`the replica read the first half (${framing})`, async () => (bytesSeen > 0 ? true : undefined));
      assert.ok(bytesSeen <= part.length, framing);
      request.end(part);
      const answer = await answered;
      assert.equal(answer.status, 200, framing);
      assert.deepEqual(JSON.parse(answer.body), { bytes: part.length * 2 }, framing);
    }
  });

  it('answers 413 for a body over the limit: at once when declared, when counted past it otherwise', async () => {
    const sink = await startStandIn('patient-sink');
    sink.behaviour = (res, req) => req.once('end', () => res.writeHead(200).end('{}'));
    setReplicas(ids.patient, [sink]);
    const declared = await send(url(ids.patient), { body: '', headers: { ...AUTH, 'content-length': String(MAX_BODY_BYTES + 1) } }).catch(() => undefined);
    assert.equal(declared?.status, 413);
    assert.equal(sink.received, 0);
    const chunked = await new Promise<number>((resolve, reject) => {
      const request = http.request(url(ids.patient), { method: 'POST', agent: false, headers: { ...AUTH } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.once('error', reject);
      const chunk = Buffer.alloc(1024 * 1024, 'b');
      let sent = 0;
      const pump = (): void => {
        while (sent <= MAX_BODY_BYTES) {
          sent += chunk.length;
          if (!request.write(chunk)) {
            request.once('drain', pump);
            return;
          }
        }
        request.end();
      };
      pump();
    });
    assert.equal(chunked, 413);
  });

  it('retries a refused connection on another replica, large streamed bodies included, but never a request a replica may have run', async () => {
    const refusing = await startStandIn('patient-refusing');
    const working = await startStandIn('patient-working');
    working.behaviour = (res, req) => req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    setReplicas(ids.patient, [refusing, working]);
    await refusing.refuse();
    const large = 'x'.repeat(RETRYABLE_BODY_BYTES * 4);
    const retried = await Promise.all([0, 1, 2, 3].map((i) => send(url(ids.patient), { body: i % 2 === 0 ? '{}' : large, headers: AUTH })));
    assert.deepEqual(
      retried.map((a) => a.status),
      [200, 200, 200, 200],
    );
    assert.equal(working.answered, 4);

    // A replica that takes the request and drops the connection may have run it: 502, not retried.
    const dropping = await startStandIn('patient-dropping');
    dropping.behaviour = (res) => res.socket?.destroy();
    const counting = await startStandIn('patient-counting');
    counting.behaviour = (res, req) => req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    setReplicas(ids.patient, [dropping, counting]);
    const answers = await Promise.all([0, 1, 2, 3].map(() => send(url(ids.patient), { body: '{}', headers: AUTH })));
    const statuses = answers.map((a) => a.status);
    assert.ok(statuses.includes(502), `the dropping replica took a request: ${statuses.join(' ')}`);
    assert.equal(dropping.received, statuses.filter((status) => status === 502).length);
    assert.equal(counting.received, statuses.filter((status) => status === 200).length);
  });
});
