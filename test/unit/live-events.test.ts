/**
 * `GET /v1/events`: the dashboard's live stream over real HTTP on a real SQLite store. Each view
 * comes at once, again after a change, and never twice unchanged; bad requests get JSON errors.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createApp } from '../../src/api/app';
import { hashApiKey } from '../../src/auth/key-hash';
import { homePaths } from '../../src/home';
import { DEFAULT_AUTOSCALING, DEFAULT_PROMOTION_SETTINGS } from '../../src/shared/schemas';
import type { ModelDetail, ModelOverview } from '../../src/shared/views';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { WorkflowsClient } from '../../src/temporal/workflows-client';

const KEY = 'test-key-0123456789';

/** Reads an event stream and hands over its messages one at a time. */
class EventReader {
  private readonly queue: EventSourceMessage[] = [];
  private wake?: () => void;
  private readonly controller = new AbortController();
  status = 0;

  static async open(url: string): Promise<EventReader> {
    const reader = new EventReader();
    const response = await fetch(url, { headers: { authorization: `Api-Key ${KEY}` }, signal: reader.controller.signal });
    reader.status = response.status;
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const parser = createParser({
      onEvent: (message) => {
        reader.queue.push(message);
        reader.wake?.();
      },
    });
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
      } catch {
        // closed by the test
      }
    })();
    return reader;
  }

  /** The next message, or a failure after `ms`. */
  async next(ms = 5000): Promise<EventSourceMessage> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      assert.ok(Date.now() < deadline, 'an event arrives');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.queue.shift()!;
  }

  /** How many messages arrived and were not read yet. */
  get unread(): number {
    return this.queue.length;
  }

  close(): void {
    this.controller.abort();
  }
}

describe('live events (GET /v1/events)', () => {
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let url: string;
  const readers: EventReader[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-events-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'tester', prefix: 'test-key', secretHash: hashApiKey(KEY), role: 'admin' });
    const unused = async (): Promise<never> => {
      throw new Error('no workflow runs in these tests');
    };
    const workflows: WorkflowsClient = {
      startDeploy: unused,
      startDevelopmentUpdate: unused,
      startPromotion: unused,
      actOnPromotion: unused,
      signalPromotion: unused,
      promotionStatus: async () => undefined,
      describe: async () => undefined,
      startInputOf: async () => undefined,
    };
    const app = createApp({ store, paths: homePaths(dir), workflows, deployTimeoutSeconds: 60, maxArchiveBytes: 1024, basePython: 'python3' });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    for (const reader of readers.splice(0)) reader.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const open = async (query = ''): Promise<EventReader> => {
    const reader = await EventReader.open(`${url}/v1/events${query}`);
    readers.push(reader);
    return reader;
  };

  /** A model with one published deployment, BUILDING, as a push leaves it. */
  const seed = async () => {
    const model = await store.findOrCreateModel('echo');
    const deployment = await store.createDeployment({ model_id: model.id, kind: 'published', labels: { team: 'ml' }, autoscaling: DEFAULT_AUTOSCALING });
    return { model, deployment };
  };

  it('answers 401 without a key, a JSON 404 for an unknown model and 422 for an unknown query, not a stream', async () => {
    const none = await fetch(`${url}/v1/events`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as any).error.code, 'unauthorized');
    const unknown = await fetch(`${url}/v1/events?model=nope`, { headers: { authorization: `Api-Key ${KEY}` } });
    assert.equal(unknown.status, 404);
    assert.match(((await unknown.json()) as any).error.message, /model nope not found/);
    const surprise = await fetch(`${url}/v1/events?models=echo`, { headers: { authorization: `Api-Key ${KEY}` } });
    assert.equal(surprise.status, 422);
  });

  it('sends every model at once, then again on each change, and nothing when nothing changed', async () => {
    const reader = await open();
    const first = await reader.next();
    assert.equal(first.event, 'models');
    assert.deepEqual(JSON.parse(first.data), { models: [] });

    const { model, deployment } = await seed();
    const models = (JSON.parse((await reader.next()).data) as { models: ModelOverview[] }).models;
    assert.equal(models.length, 1);
    assert.equal(models[0]!.model.name, 'echo');
    assert.equal(models[0]!.deployments[0]!.status, 'BUILDING');
    assert.deepEqual(models[0]!.deployments[0]!.labels, { team: 'ml' });

    await store.updateDeployment(deployment.id, { status: 'ACTIVE' });
    let active: ModelOverview | undefined;
    while (!active) {
      const latest = (JSON.parse((await reader.next()).data) as { models: ModelOverview[] }).models;
      active = latest.find((m) => m.deployments[0]?.status === 'ACTIVE');
    }
    assert.equal(active.model.id, model.id);

    // A write that changes nothing the view shows (a node's heartbeat) sends nothing.
    await store.reportNode({ id: 'n1', gateway_url: 'http://127.0.0.1:1', heartbeat_at: new Date().toISOString(), applied_routes: {} });
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(reader.unread, 0);
  });

  it('sends one model in full with ?model=, by id or by name, including environments and the audit log', async () => {
    const { model, deployment } = await seed();
    await store.createEnvironment(model.id, 'staging', DEFAULT_PROMOTION_SETTINGS);
    const byName = await open('?model=echo');
    const first = await byName.next();
    assert.equal(first.event, 'model');
    let detail = JSON.parse(first.data) as ModelDetail;
    assert.equal(detail.model.id, model.id);
    assert.deepEqual(detail.environments.map((env) => env.name).sort(), ['production', 'staging']);
    assert.deepEqual(
      detail.deployments.map((d) => d.id),
      [deployment.id],
    );

    const byId = await open(`?model=${model.id}`);
    assert.deepEqual(JSON.parse((await byId.next()).data), detail);

    await store.appendAudit({ model_id: model.id, actor: 'alice', action: 'RENAME', target: deployment.id, details: { name: 'blue' } });
    detail = JSON.parse((await byName.next()).data) as ModelDetail;
    assert.equal(detail.audit_logs[0]?.actor, 'alice');
    assert.equal(detail.audit_logs[0]?.action, 'RENAME');
  });

  it('sees writes made by another process (another connection to the database)', async () => {
    const reader = await open();
    await reader.next();
    const other = new SqliteStore(path.join(dir, 'gantry.db'));
    try {
      await other.findOrCreateModel('written-elsewhere');
      const models = (JSON.parse((await reader.next()).data) as { models: ModelOverview[] }).models;
      assert.deepEqual(
        models.map((m) => m.model.name),
        ['written-elsewhere'],
      );
    } finally {
      await other.close();
    }
  });
});
