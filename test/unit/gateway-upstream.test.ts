import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../src/auth/api-keys';
import { Gateway } from '../../src/node/gateway/gateway';
import { predictTimeoutOf } from '../../src/node/gateway/routing-table';
import type { ReplicaProcess } from '../../src/node/runtime/replica-process';
import { DEFAULT_AUTOSCALING, DEFAULT_PREDICT_TIMEOUT_SECONDS, modelConfigSchema, type ModelConfig } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { eventually } from '../helpers/ports';
import { send, startRequest } from './support/http';

const KEY = 'gateway-test-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };

/** Every stand-in started, so that each test stops its own. */
const started: StandIn[] = [];

/** A real HTTP server standing in for a replica; `behaviour` decides what it does with each /predict. */
class StandIn {
  received = 0;
  answered = 0;
  /** Requests whose connection closed before the answer was complete. */
  closedEarly = 0;
  behaviour: (res: http.ServerResponse) => void = () => {};
  readonly server = http.createServer((req, res) => {
    this.received++;
    req.resume();
    res.once('close', () => {
      if (res.writableFinished) this.answered++;
      else this.closedEarly++;
    });
    this.behaviour(res);
  });
  readonly agent = new http.Agent({ keepAlive: true });
  /** What the gateway sees of the replica (the fields it uses). */
  replica = { id: '', port: 0, agent: this.agent, inFlight: 0 };

  async start(id: string): Promise<this> {
    started.push(this);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.replica = { id, port: (this.server.address() as AddressInfo).port, agent: this.agent, inFlight: 0 };
    return this;
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
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
      store,
      runtime: { routableReplicas: (id: string) => (replicas.get(id) ?? []).map((standIn) => standIn.replica) as unknown as ReplicaProcess[] },
      log: () => {},
    });
    base = `http://127.0.0.1:${await gateway.listen(0, '127.0.0.1')}`;
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((standIn) => standIn.stop()));
    replicas.clear();
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
    const standIns = [await new StandIn().start('quick-a'), await new StandIn().start('quick-b')];
    replicas.set(ids.quick, standIns); // both never answer
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
      standIns.map((s) => s.replica.inFlight),
      [0, 0],
    );
  });

  it('still tries another replica when one refuses the connection', async () => {
    const refusing = await new StandIn().start('quick-refusing');
    const working = await new StandIn().start('quick-working');
    working.behaviour = (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    replicas.set(ids.quick, [refusing, working]);
    await new Promise((resolve) => refusing.server.close(resolve)); // its port now refuses
    const answers = await Promise.all([0, 1, 2, 3].map(() => send(url(ids.quick), { body: '{}', headers: AUTH })));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    assert.equal(working.answered, 4);
  });

  it('cuts an answer whose body stalls for the timeout, and lets a slow but steady one finish', async () => {
    const stalling = await new StandIn().start('quick-stalling');
    stalling.behaviour = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n'); // and nothing more
    };
    replicas.set(ids.quick, [stalling]);
    await assert.rejects(send(url(ids.quick), { body: '{}', headers: AUTH }));
    await eventually('the stalled answer closed', async () => (stalling.closedEarly === 1 ? true : undefined));
    assert.equal(gateway.inFlight(ids.quick), 0);

    const steady = await new StandIn().start('quick-steady');
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
    replicas.set(ids.quick, [steady]);
    const answer = await send(url(ids.quick), { body: '{}', headers: AUTH });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.split('\n').filter(Boolean).length, 8);
  });

  it('closes the request to the replica when the client disconnects', async () => {
    const standIn = await new StandIn().start('patient-a'); // never answers; the timeout is 600 s
    replicas.set(ids.patient, [standIn]);
    const request = startRequest(url(ids.patient), '{}', AUTH);
    await eventually('the replica got the request', async () => (standIn.received === 1 ? true : undefined));
    assert.equal(gateway.inFlight(ids.patient), 1);
    assert.equal(standIn.replica.inFlight, 1);
    request.destroy();
    await eventually('the upstream request closed', async () => (standIn.closedEarly === 1 ? true : undefined));
    assert.equal(standIn.answered, 0);
    await eventually('nothing in flight', async () => (gateway.inFlight(ids.patient) === 0 && standIn.replica.inFlight === 0 ? true : undefined));
  });

  it('takes a waiting request out of the queue when its client disconnects', async () => {
    const requests = [0, 1, 2].map(() => startRequest(url(ids.idle), '{}', AUTH));
    await eventually('three requests queued', async () => (gateway.queued(ids.idle) === 3 && gateway.inFlight(ids.idle) === 3 ? true : undefined));
    requests[0]!.destroy();
    await eventually('two left', async () => (gateway.queued(ids.idle) === 2 && gateway.inFlight(ids.idle) === 2 ? true : undefined));
    for (const request of requests.slice(1)) request.destroy();
    await eventually('the queue empty', async () => (gateway.queued(ids.idle) === 0 && gateway.inFlight(ids.idle) === 0 ? true : undefined));
  });
});
