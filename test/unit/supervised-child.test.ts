/**
 * The supervisor's children: one killed outright leaves nothing behind in its process group (a
 * Temporal dev server orphaned by its killed wrapper kept its port, and every restart failed).
 */
import { strict as assert } from 'node:assert';
import { SupervisedChild } from '../../src/stack/supervised-child';
import { eventually } from '../helpers/ports';

/** A process that starts a long-lived one of its own (in its process group) and prints its pid. */
const PARENT_WITH_GRANDCHILD = `
const { spawn } = require('node:child_process');
const grandchild = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
console.log('grandchild ' + grandchild.pid);
setTimeout(() => {}, 600000);
`;

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('SupervisedChild', function () {
  this.timeout(20_000);

  it('kills what a child killed with SIGKILL left in its process group, then restarts it', async () => {
    const lines: string[] = [];
    const child = new SupervisedChild({ name: 'wrapper', command: process.execPath, args: ['-e', PARENT_WITH_GRANDCHILD] }, (line) => lines.push(line), {
      baseMs: 100,
      maxMs: 100,
      stableAfterMs: 60_000,
    });
    child.start();
    try {
      const first = await eventually('the first grandchild', async () => lines.map((line) => /grandchild (\d+)/.exec(line)?.[1]).find(Boolean));
      const firstPid = child.pid!;
      process.kill(firstPid, 'SIGKILL');
      await eventually('the orphaned grandchild to be killed', async () => (alive(Number(first)) ? undefined : true), 5_000, 50);
      await eventually('the restart', async () => (child.restarts === 1 && child.pid !== undefined && child.pid !== firstPid ? true : undefined), 5_000, 50);
    } finally {
      await child.stop(2_000);
    }
    const grandchildren = lines.map((line) => /grandchild (\d+)/.exec(line)?.[1]).filter((pid): pid is string => pid !== undefined);
    assert.ok(grandchildren.length >= 1);
    await eventually('every grandchild to be gone after stop', async () => (grandchildren.every((pid) => !alive(Number(pid))) ? true : undefined), 5_000, 50);
  });
});
