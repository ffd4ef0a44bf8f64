import { strict as assert } from 'node:assert';
import { CoalescedRun } from '../../src/shared/coalesced-run';

/** A task whose runs the test lets finish one by one. */
function steppedTask(): { task: () => Promise<void>; runs: number; finish: () => void; fail: (error: Error) => void } {
  let release: { resolve: () => void; reject: (error: Error) => void } | undefined;
  const state = {
    runs: 0,
    task: () =>
      new Promise<void>((resolve, reject) => {
        state.runs++;
        release = { resolve, reject };
      }),
    finish: () => release?.resolve(),
    fail: (error: Error) => release?.reject(error),
  };
  return state;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('CoalescedRun', () => {
  it('runs once more after a run for any number of calls made during it, and is idle after', async () => {
    const stepped = steppedTask();
    const run = new CoalescedRun(stepped.task);
    const first = run.run();
    const during = [run.run(), run.run(), run.run()];
    assert.equal(stepped.runs, 1);
    assert.ok(
      during.every((promise) => promise === first),
      'callers during a run share its promise',
    );
    stepped.finish();
    await tick();
    assert.equal(stepped.runs, 2, 'three calls during the first run made one more run');
    stepped.finish();
    await first;
    assert.equal(stepped.runs, 2);
    assert.equal(run.current, undefined);
    const next = run.run();
    assert.equal(stepped.runs, 3, 'an idle run starts at once');
    stepped.finish();
    await next;
  });

  it('ends at a failure: told once with onError (never rejecting), rejected without it', async () => {
    const stepped = steppedTask();
    const errors: unknown[] = [];
    const run = new CoalescedRun(stepped.task, (error) => errors.push(error));
    const first = run.run();
    const second = run.run();
    stepped.fail(new Error('store busy'));
    await Promise.all([first, second]);
    assert.equal(stepped.runs, 1, 'the run asked for during the failed one is not made');
    assert.deepEqual(
      errors.map((error) => (error as Error).message),
      ['store busy'],
    );

    const bare = steppedTask();
    const rejecting = new CoalescedRun(bare.task);
    const attempt = rejecting.run();
    bare.fail(new Error('no store'));
    await assert.rejects(attempt, /no store/);
    assert.equal(rejecting.current, undefined);
  });
});
