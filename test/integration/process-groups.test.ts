/**
 * Process groups and the host replica cap on the real stack: a model's child process stops
 * with its replica (scale-down, deactivate), a scale-up beyond GANTRY_MAX_REPLICAS starts what
 * fits and says so in the deployment's status message, and a build whose import check hangs
 * is killed with its process group at GANTRY_BUILD_TIMEOUT_SECONDS.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listProcesses } from '../../src/shared/process-table';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const fixture = (name: string): string => path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);

interface Deployment {
  id: string;
  model_id: string;
  status: string;
  status_message: string | null;
  replicas: { desired: number; ready: number };
}

/** Whether a process with this pid exists (signal 0 checks without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids of the processes in a process group, read from /proc. */
function groupMembers(pgid: number): number[] {
  return listProcesses()
    .filter((p) => p.processGroup === pgid)
    .map((p) => p.pid);
}

/** The pids of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  return listProcesses()
    .filter((p) => p.argv.join('\0').includes(text))
    .map((p) => p.pid);
}

describe('process groups and the host replica cap (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;

  async function push(dir: string, ...flags: string[]): Promise<{ code: number; deployment: Deployment; output: string }> {
    const result = await stack.cli(['push', dir, '--wait', '--output', 'json', ...flags]);
    assert.ok(result.stdout.trim().startsWith('{'), `push printed no JSON: ${result.stdout}\n${result.stderr}`);
    return { code: result.code, deployment: JSON.parse(result.stdout) as Deployment, output: result.stdout + result.stderr };
  }

  async function view(deployment: Deployment): Promise<Deployment> {
    const answer = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as Deployment;
  }

  async function logText(deployment: Deployment): Promise<string> {
    const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=500`);
    assert.equal(logs.status, 200);
    return (logs.body.entries as { message: string }[]).map((entry) => entry.message).join('\n');
  }

  /** A copy of slow-import whose import never returns (an hour), named `name`. */
  function hangingPackage(name: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-hung-build-'));
    fs.cpSync(fixture('slow-import'), dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.yaml'), `model_name: ${name}\nenvironment_variables:\n  IMPORT_SECONDS: "3600"\n`);
    return dir;
  }

  /** The server pids of the deployment's replicas, as the node reports them. */
  async function replicaPids(deploymentId: string): Promise<number[]> {
    const store = openSqliteStore(path.join(stack.home, 'gantry.db'));
    try {
      return (await store.listReplicas(deploymentId)).flatMap((replica) => (replica.pid ? [replica.pid] : []));
    } finally {
      await store.close();
    }
  }

  before(async () => {
    stack = await TestStack.create({ GANTRY_MAX_REPLICAS: '2', GANTRY_BUILD_TIMEOUT_SECONDS: '40' });
    await stack.start();
  });

  after(async () => {
    await stack?.destroy();
  });

  it("stops a model's child process with its replica on scale-down and deactivate, and holds a scale-up beyond the host cap back with a clear status", async () => {
    const { code, deployment, output } = await push(fixture('forks-child'));
    assert.equal(code, 0, output);
    const answer = await stack.predict(`/models/${deployment.model_id}/production/predict`, {});
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const { pid, child_pid: childPid } = answer.body as { pid: number; child_pid: number };
    assert.ok(alive(pid) && alive(childPid), 'the replica and the child its load() started both run');
    assert.deepEqual(groupMembers(pid).sort(), [pid, childPid].sort(), 'the child is in the replica process group');

    // Three wanted, the cap is two: two run, and the deployment says why the third does not.
    const route = `/v1/models/${deployment.model_id}/deployments/${deployment.id}/autoscaling_settings`;
    assert.equal((await stack.api('PATCH', route, { min_replica: 3, max_replica: 3 })).status, 200);
    const capped = await eventually('two ready replicas of three, held back by the cap', async () => {
      const now = await view(deployment);
      return now.replicas.desired === 3 && now.replicas.ready === 2 && now.status_message !== null ? now : undefined;
    });
    assert.equal(capped.status, 'ACTIVE');
    assert.equal(capped.status_message, '2 of 3 replicas: host replica cap GANTRY_MAX_REPLICAS=2 reached');
    const both = await replicaPids(deployment.id);
    assert.equal(both.length, 2, 'the node runs no more replicas than the cap');
    const groups = new Map(both.map((server) => [server, groupMembers(server)]));
    for (const [server, members] of groups) assert.equal(members.length, 2, `replica ${server} and its child: ${members.join(', ')}`);

    // Another deployment pushed now finds the cap full: it is built, and waits for room.
    const pushed = await stack.cli(['push', fixture('forks-child'), '--model-name', 'queued', '--output', 'json']);
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    const queued = JSON.parse(pushed.stdout) as Deployment;
    const waiting = await eventually('the second deployment held back by the cap', async () => {
      const now = await view(queued);
      return now.status_message?.includes('host replica cap') ? now : undefined;
    });
    assert.equal(waiting.status_message, '0 of 1 replicas: host replica cap GANTRY_MAX_REPLICAS=2 reached');
    assert.equal(waiting.replicas.ready, 0);

    // Scale down to one: the retired replica's whole group is gone, the other's still runs, and
    // the room it frees goes to the deployment that waited.
    assert.equal((await stack.api('PATCH', route, { min_replica: 1, max_replica: 1 })).status, 200);
    const [kept] = await eventually('one replica left', async () => {
      const pids = await replicaPids(deployment.id);
      return pids.length === 1 ? pids : undefined;
    });
    const retired = both.filter((server) => server !== kept);
    assert.equal(retired.length, 1);
    for (const gone of groups.get(retired[0]!)!) await eventually(`process ${gone} of the retired replica to end`, async () => (alive(gone) ? undefined : true));
    for (const running of groups.get(kept!)!) assert.ok(alive(running), `process ${running} of the kept replica runs`);
    const uncapped = await eventually('the cap message cleared', async () => {
      const now = await view(deployment);
      return now.status_message === null ? now : undefined;
    });
    assert.equal(uncapped.replicas.desired, 1);
    const served = await eventually('the waiting deployment to get its replica', async () => {
      const now = await view(queued);
      return now.status === 'ACTIVE' && now.replicas.ready === 1 ? now : undefined;
    });
    assert.equal(served.status_message, null);
    assert.equal((await replicaPids(deployment.id)).length + (await replicaPids(queued.id)).length, 2, 'still no more replicas than the cap');
    const queuedPids = await replicaPids(queued.id);
    const queuedGroup = groupMembers(queuedPids[0]!);
    assert.equal(queuedGroup.length, 2);
    const stopped = await stack.cli(['deployments', 'deactivate', queued.model_id, queued.id, '--wait']);
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    for (const gone of queuedGroup) await eventually(`process ${gone} to end after deactivate`, async () => (alive(gone) ? undefined : true));

    // Deactivate: the last replica and its child end too.
    const deactivated = await stack.cli(['deployments', 'deactivate', deployment.model_id, deployment.id, '--wait']);
    assert.equal(deactivated.code, 0, deactivated.stdout + deactivated.stderr);
    for (const gone of groups.get(kept!)!) await eventually(`process ${gone} to end after deactivate`, async () => (alive(gone) ? undefined : true));
  });

  it('kills a build whose import check hangs at GANTRY_BUILD_TIMEOUT_SECONDS: BUILD_FAILED, and none of its processes left', async () => {
    const dir = hangingPackage('hung-build');
    try {
      const started = Date.now();
      const { code, deployment, output } = await push(dir);
      assert.equal(code, 1, output);
      assert.equal(deployment.status, 'BUILD_FAILED');
      assert.equal(deployment.status_message, 'the build did not finish within GANTRY_BUILD_TIMEOUT_SECONDS=40; its processes were killed');
      assert.ok(Date.now() - started < 120_000, 'the build ended at its deadline, not the import check an hour later');
      // The import check ran from the deployment's build folder under this stack's home.
      const buildFolder = path.join(stack.home, 'builds', deployment.id);
      assert.deepEqual(processesMentioning(buildFolder), [], 'no process of the build is left');
      assert.deepEqual(processesMentioning(path.join(stack.home, 'venvs')), [], 'no process runs from a virtual environment');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('kills the hung import check of a build whose deploy workflow is cancelled, before its deadline', async () => {
    const dir = hangingPackage('cancelled-build');
    try {
      const pushed = await stack.cli(['push', dir, '--output', 'json']);
      assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
      const deployment = JSON.parse(pushed.stdout) as Deployment;
      const buildFolder = path.join(stack.home, 'builds', deployment.id);
      await eventually('the import check to run', async () => (processesMentioning(buildFolder).length > 0 ? true : undefined), 60_000, 100);
      const started = Date.now();
      const client = await stack.temporalClient();
      try {
        await client.workflow.getHandle(`deploy:${deployment.id}`).cancel();
      } finally {
        await client.connection.close();
      }
      await eventually('the import check killed', async () => (processesMentioning(buildFolder).length === 0 ? true : undefined), 35_000, 200);
      assert.ok(Date.now() - started < 35_000, 'killed on cancellation, before the 40 s deadline');
      await eventually('the build log to say why', async () => (/build stopped: it was cancelled/.test(await logText(deployment)) ? true : undefined));
      const ended = await eventually('the deployment to end', async () => {
        const now = await view(deployment);
        return now.status === 'BUILDING' ? undefined : now;
      });
      assert.equal(ended.status, 'BUILD_FAILED');
      assert.equal(ended.status_message, 'the deploy was cancelled');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
