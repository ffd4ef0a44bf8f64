import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageMeter } from '../../src/node/usage-meter';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { ObservedReplica } from '../../src/store/store';
import { failingStore } from './support/failing-store';

describe('UsageMeter', () => {
  it('meters running replica-seconds and requests per deployment per minute', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-usage-'));
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    let now = Date.parse('2026-01-01T00:00:50.000Z');
    const meter = new UsageMeter(store, () => now);
    const replica = (id: string, deployment_id: string, state: ObservedReplica['state'], pid: number | null): ObservedReplica => ({
      id,
      deployment_id,
      node_id: 'n',
      state,
      pid,
      port: null,
      restarts: 0,
      last_exit: null,
      last_error: null,
      revision: 0,
      reload_error: null,
      started_at: '',
      ready_at: null,
      updated_at: '',
    });
    const running = [replica('r1', 'd1', 'READY', 1), replica('r2', 'd1', 'STARTING', 2), replica('r3', 'd2', 'EXITED', null)];
    now += 5000;
    meter.sampleReplicas(running);
    meter.countRequest('d1');
    meter.countRequest('d1');
    now += 10_000; // into the next minute
    meter.sampleReplicas(running);
    meter.countRequest('d2');
    await meter.flush();
    await meter.flush(); // nothing pending: writes nothing
    const usage = await store.listUsage({ start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' });
    assert.deepEqual(usage, [
      { deployment_id: 'd1', minute: '2026-01-01T00:00:00.000Z', replica_seconds: 10, requests: 2 },
      { deployment_id: 'd1', minute: '2026-01-01T00:01:00.000Z', replica_seconds: 20, requests: 0 },
      { deployment_id: 'd2', minute: '2026-01-01T00:01:00.000Z', replica_seconds: 0, requests: 1 },
    ]);
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the samples of a failed write, adds what is metered meanwhile, and writes them at the next flush', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-usage-'));
    const sqlite = new SqliteStore(path.join(dir, 'gantry.db'));
    const { store, failing, failures } = failingStore(sqlite);
    let now = Date.parse('2026-01-01T00:00:40.000Z');
    const meter = new UsageMeter(store, () => now);
    const running: ObservedReplica[] = [
      {
        id: 'r1',
        deployment_id: 'd1',
        node_id: 'n',
        state: 'READY',
        pid: 1,
        port: null,
        restarts: 0,
        last_exit: null,
        last_error: null,
        revision: 0,
        reload_error: null,
        started_at: '',
        ready_at: null,
        updated_at: '',
      },
    ];
    now += 4000;
    meter.sampleReplicas(running);
    meter.countRequest('d1');
    meter.countRequest('d2');

    failing.add('addUsage');
    await assert.rejects(meter.flush(), /database is locked/);
    assert.equal(failures.get('addUsage'), 1);
    assert.equal(meter.pendingSamples, 2);
    failing.clear();

    // Metered while the write failed: the same minute (merged) and the next one.
    now += 6000;
    meter.sampleReplicas(running);
    meter.countRequest('d1');
    now += 10_000;
    meter.sampleReplicas(running);
    meter.countRequest('d1');
    await meter.flush();
    assert.equal(meter.pendingSamples, 0);

    const usage = await sqlite.listUsage({ start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' });
    assert.deepEqual(usage, [
      { deployment_id: 'd1', minute: '2026-01-01T00:00:00.000Z', replica_seconds: 10, requests: 2 },
      { deployment_id: 'd2', minute: '2026-01-01T00:00:00.000Z', replica_seconds: 0, requests: 1 },
      { deployment_id: 'd1', minute: '2026-01-01T00:01:00.000Z', replica_seconds: 10, requests: 1 },
    ]);
    await sqlite.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs flushes one after another, so none writes a sample twice', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-usage-'));
    const sqlite = new SqliteStore(path.join(dir, 'gantry.db'));
    const { store, failNext, hold, failures } = failingStore(sqlite);
    const meter = new UsageMeter(store, () => Date.parse('2026-01-01T00:00:10.000Z'));
    for (let i = 0; i < 5; i++) meter.countRequest('d1');
    const release = hold('addUsage');
    failNext('addUsage');
    const first = meter.flush(); // takes the 5; its write waits, then fails
    meter.countRequest('d1');
    const second = meter.flush(); // asked while the first is in flight
    release();
    const outcomes = await Promise.allSettled([first, second]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['rejected', 'fulfilled'],
    );
    assert.equal(failures.get('addUsage'), 1);
    await meter.flush(); // nothing left to write
    const usage = await sqlite.listUsage({ start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' });
    assert.deepEqual(usage, [{ deployment_id: 'd1', minute: '2026-01-01T00:00:00.000Z', replica_seconds: 0, requests: 6 }]);
    await sqlite.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
