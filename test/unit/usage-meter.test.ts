import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageMeter } from '../../src/node/usage-meter';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { ObservedReplica } from '../../src/store/store';

describe('UsageMeter', () => {
  it('meters running replica-seconds and requests per deployment per minute', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-usage-'));
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    let now = Date.parse('2026-01-01T00:00:50.000Z');
    const meter = new UsageMeter(store, () => now);
    const replica = (id: string, deployment_id: string, state: ObservedReplica['state'], pid: number | null): ObservedReplica => ({
      id, deployment_id, node_id: 'n', state, pid, port: null, restarts: 0, last_exit: null, last_error: null, revision: 0, reload_error: null, started_at: '', ready_at: null, updated_at: '',
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
});
