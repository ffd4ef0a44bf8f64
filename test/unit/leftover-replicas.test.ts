/**
 * Replica processes an earlier run of a node left running, found by their command line and
 * ended with their process group; a child of this node and the replicas of another home are
 * left alone. Real processes: stand-ins whose command line is a model server's (a Python that
 * sleeps, with `gantry_model_server.py serve --package <dir>` among its arguments), orphaned
 * the way a killed node orphans its replicas.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { endLeftoverReplicas, findLeftoverReplicas } from '../../src/node/runtime/leftover-replicas';
import { eventually } from '../helpers/ports';

/** Python that starts a `sleep` child (its process group's other member), writes that child's pid to the file given, then sleeps. */
const STAND_IN = 'import subprocess, sys, time\nchild = subprocess.Popen(["sleep", "120"])\nopen(sys.argv[1], "w").write(str(child.pid))\ntime.sleep(120)';

/** The arguments that make a stand-in look like a replica serving `packageDir`. */
function replicaArgs(pidFile: string, packageDir: string, command = 'serve'): string[] {
  return ['-c', STAND_IN, pidFile, '/opt/gantry/model-server/gantry_model_server.py', command, '--package', packageDir, '--port', '0'];
}

/** Whether process `pid` still runs (a zombie, ended but not reaped, does not). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('leftover replicas of an earlier node run', function () {
  this.timeout(60_000);
  if (process.platform !== 'linux') return;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-leftovers-'));
  const builds = path.join(root, 'home', 'builds');
  const otherBuilds = path.join(root, 'other-home', 'builds');
  const started: number[] = [];
  const children: ChildProcess[] = [];

  /** Starts a stand-in through a shell that exits at once, in a session of its own: orphaned, as a killed node's replica is. Resolves with its pid and its child's. */
  async function orphan(name: string, packageDir: string, command = 'serve'): Promise<{ pid: number; child: number }> {
    const pidFile = path.join(root, `${name}.child`);
    const args = replicaArgs(pidFile, packageDir, command)
      .map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const shell = spawnSync('sh', ['-c', `setsid python3 ${args} >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
    const pid = Number(shell.stdout.trim());
    assert.ok(pid > 0, shell.stderr);
    started.push(pid);
    const child = await eventually(`${name}'s child`, async () =>
      fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8') ? Number(fs.readFileSync(pidFile, 'utf8')) : undefined,
    );
    started.push(child);
    return { pid, child };
  }

  after(() => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ended by the test
      }
    }
    for (const child of children) child.kill('SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("ends an orphaned replica of this home with its process group, and leaves a child of this node, another home and a build's import check alone", async () => {
    const leftover = await orphan('leftover', path.join(builds, 'd1'));
    const elsewhere = await orphan('elsewhere', path.join(otherBuilds, 'd2'));
    // The worker's import check of a build (`check`, not `serve`): the worker's, not a replica.
    const importCheck = await orphan('import-check', path.join(builds, 'd4'), 'check');
    const ownChild = spawn('python3', replicaArgs(path.join(root, 'own.child'), path.join(builds, 'd3')), { stdio: 'ignore', detached: true });
    children.push(ownChild);
    await eventually("this node's own replica", async () => (fs.existsSync(path.join(root, 'own.child')) ? true : undefined));
    started.push(Number(fs.readFileSync(path.join(root, 'own.child'), 'utf8')));

    assert.deepEqual(
      findLeftoverReplicas(builds).map(({ pid, processGroup, packageDir }) => ({ pid, processGroup, packageDir })),
      [{ pid: leftover.pid, processGroup: leftover.pid, packageDir: path.join(builds, 'd1') }],
    );

    const lines: string[] = [];
    const ended = endLeftoverReplicas(builds, (line) => lines.push(line));
    assert.deepEqual(
      ended.map((replica) => replica.pid),
      [leftover.pid],
    );
    assert.deepEqual(lines, [`node: ended 1 replica process an earlier run of this node left running: pid ${leftover.pid} (d1)`]);
    await eventually('the leftover and its child to end', async () => (!running(leftover.pid) && !running(leftover.child) ? true : undefined));
    assert.deepEqual(findLeftoverReplicas(builds), []);

    // Not this home's, this node's own, and not a replica: untouched.
    assert.ok(running(elsewhere.pid) && running(elsewhere.child), 'the other home’s replica still runs');
    assert.ok(running(importCheck.pid) && running(importCheck.child), 'the import check still runs');
    assert.ok(ownChild.pid !== undefined && running(ownChild.pid), "this node's own replica still runs");
    assert.equal(findLeftoverReplicas(otherBuilds).length, 1);
  });
});
