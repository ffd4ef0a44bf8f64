import { strict as assert } from 'node:assert';
import Database from 'better-sqlite3';
import { describeError, RetriedTask } from '../../src/node/retried-task';

const BACKOFF = { initialMs: 10, maxMs: 40 };
const busy = (): Error => new Database.SqliteError('database is locked', 'SQLITE_BUSY');

describe('RetriedTask', () => {
  it('retries a failing task with doubling, capped waits, logging each failure, until it succeeds', async () => {
    const lines: string[] = [];
    let tries = 0;
    const task = new RetriedTask(
      async () => {
        tries++;
        if (tries <= 4) throw busy();
      },
      { what: 'heartbeat', log: (line) => lines.push(line), backoff: BACKOFF },
    );
    assert.equal(await task.run(), true);
    assert.equal(tries, 5);
    assert.deepEqual(lines, [
      'node: heartbeat failed (will retry in 0.01 s): SQLITE_BUSY: database is locked',
      'node: heartbeat failed (will retry in 0.02 s): SQLITE_BUSY: database is locked',
      'node: heartbeat failed (will retry in 0.04 s): SQLITE_BUSY: database is locked',
      'node: heartbeat failed (will retry in 0.04 s): SQLITE_BUSY: database is locked',
    ]);
  });

  it('coalesces calls made during a run into one more run', async () => {
    let tries = 0;
    let release = (): void => {};
    const task = new RetriedTask(
      async () => {
        tries++;
        if (tries === 1) await new Promise<void>((resolve) => (release = resolve));
      },
      { what: 'replica report', log: () => {}, backoff: BACKOFF },
    );
    const first = task.run();
    const more = [task.run(), task.run(), task.run()];
    release();
    assert.deepEqual(await Promise.all([first, ...more]), [true, true, true, true]);
    assert.equal(tries, 2);
    assert.equal(await task.run(), true); // idle again: a new run
    assert.equal(tries, 3);
  });

  it('stops retrying once closed, also in the middle of a wait', async () => {
    const lines: string[] = [];
    let tries = 0;
    const task = new RetriedTask(
      async () => {
        tries++;
        throw busy();
      },
      { what: 'replica report', log: (line) => lines.push(line), backoff: { initialMs: 60_000, maxMs: 60_000 } },
    );
    const run = task.run();
    while (lines.length === 0) await new Promise((resolve) => setImmediate(resolve));
    await task.close(); // cuts the 60 s wait short
    assert.equal(await run, false);
    assert.equal(tries, 1);
    assert.equal(await task.run(), false); // closed: not run
    assert.equal(tries, 1);
  });

  it('describes an error in one line with its code once', () => {
    assert.equal(describeError(busy()), 'SQLITE_BUSY: database is locked');
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    assert.equal(describeError(enospc), 'ENOSPC: no space left on device, write');
    assert.equal(describeError(new Error('first line\nsecond line')), 'first line');
    assert.equal(describeError('a string'), 'a string');
  });
});
