import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collectPythonEnvironments, environmentKeyOfPython } from '../../src/build/environment-collection';
import { COMPLETE_MARKER, environmentDir, environmentPython, markEnvironmentUsed } from '../../src/build/python-environments';
import { homePaths } from '../../src/home';
import { Reconciler } from '../../src/node/reconciler';
import { DEFAULT_AUTOSCALING } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { eventually } from '../helpers/ports';

const HOUR = 3_600_000;
const RETENTION = { unusedForMs: 24 * HOUR, partialAfterMs: 2 * HOUR };

/** A 20-hex-digit environment key made from a number. */
function key(n: number): string {
  return n.toString(16).padStart(20, '0');
}

/** A complete environment last used `ageMs` ago (its marker's time). */
function completeEnvironment(venvs: string, envKey: string, ageMs: number): string {
  const dir = environmentDir(venvs, envKey);
  fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'lib', 'module.py'), 'x = 1\n');
  const marker = path.join(dir, COMPLETE_MARKER);
  fs.writeFileSync(marker, '{}\n');
  const when = new Date(Date.now() - ageMs);
  fs.utimesSync(marker, when, when);
  return dir;
}

/** A build's scratch folder created `ageMs` ago. */
function partial(venvs: string, envKey: string, ageMs: number): string {
  const dir = path.join(venvs, `.${envKey}.abcdef01.partial`);
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const when = new Date(Date.now() - ageMs);
  fs.utimesSync(dir, when, when);
  return dir;
}

describe('collection of unused Python environments', () => {
  let home: string;
  let venvs: string;

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-collect-'));
    venvs = path.join(home, 'venvs');
    fs.mkdirSync(venvs);
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('removes environments unused past their retention and dead builds’ scratch folders, and nothing else', async () => {
    const stale = completeEnvironment(venvs, key(1), 25 * HOUR);
    const recent = completeEnvironment(venvs, key(2), 23 * HOUR);
    const inUse = completeEnvironment(venvs, key(3), 100 * HOUR);
    const incomplete = path.join(venvs, key(4)); // no marker: never taken for a complete one, never removed here
    fs.mkdirSync(incomplete);
    const deadBuild = partial(venvs, key(5), 3 * HOUR);
    const runningBuild = partial(venvs, key(6), HOUR);
    const stranger = path.join(venvs, 'system-python');
    fs.mkdirSync(stranger);

    const result = collectPythonEnvironments(venvs, new Set([key(3)]), RETENTION);
    await result.removed;

    assert.deepEqual([result.environments, result.partials], [[key(1)], [path.basename(deadBuild)]]);
    assert.deepEqual(
      [stale, recent, inUse, incomplete, deadBuild, runningBuild, stranger].map((dir) => fs.existsSync(dir)),
      [false, true, true, true, false, true, true],
    );
    // The one in use was marked used now, so its retention starts over once nothing uses it.
    assert.ok(Date.now() - fs.statSync(path.join(inUse, COMPLETE_MARKER)).mtimeMs < HOUR);
    assert.deepEqual(fs.readdirSync(venvs).sort(), [key(2), key(3), key(4), path.basename(runningBuild), 'system-python'].sort());
  });

  it('leaves a dead build’s scratch folder that is still a sandbox uid’s (a process of it may live on) to its owner', async () => {
    const held = partial(venvs, key(14), 3 * HOUR);
    fs.chownSync(held, 2_000_000_123, 2_000_000_123);
    const when = new Date(Date.now() - 3 * HOUR);
    fs.utimesSync(held, when, when);
    const result = collectPythonEnvironments(venvs, new Set(), RETENTION);
    await result.removed;
    assert.deepEqual(result.partials, []);
    assert.ok(fs.existsSync(held));
  });

  it('restarts an environment’s retention when a build reuses it', () => {
    const dir = completeEnvironment(venvs, key(7), 30 * HOUR);
    assert.equal(markEnvironmentUsed(venvs, key(7)), true);
    assert.deepEqual(collectPythonEnvironments(venvs, new Set(), RETENTION).environments, []);
    assert.ok(fs.existsSync(dir));
    assert.equal(markEnvironmentUsed(venvs, key(8)), false, 'an environment that is not built is not marked');
  });

  it('reads the environment key of a replica’s interpreter only inside the environments folder', () => {
    assert.equal(environmentKeyOfPython(venvs, environmentPython(environmentDir(venvs, key(9)))), key(9));
    assert.equal(environmentKeyOfPython(venvs, '/usr/bin/python3'), undefined);
    assert.equal(environmentKeyOfPython(venvs, environmentPython(environmentDir(venvs, 'system-python'))), undefined);
  });

  it('keeps, through the node’s reconciler, what a deployment that is not deleted or a running replica uses', async () => {
    const paths = homePaths(home);
    const store = new SqliteStore(paths.database);
    try {
      const model = await store.findOrCreateModel('collected');
      const create = () => store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
      const [inactive, deleted, draining] = [await create(), await create(), await create()];
      // An inactive deployment may be activated again: its environment stays.
      await store.updateDeployment(inactive.id, { env_key: key(10), status: 'INACTIVE' });
      await store.updateDeployment(deleted.id, { env_key: key(11), deleted_at: new Date().toISOString() });
      // Deleted, but a replica of it still drains here: its environment stays until the replica is gone.
      await store.updateDeployment(draining.id, { env_key: key(12), deleted_at: new Date().toISOString() });
      for (const n of [10, 11, 12]) completeEnvironment(paths.venvs, key(n), 48 * HOUR);
      const stale = partial(paths.venvs, key(13), 3 * HOUR);
      const lines: string[] = [];
      const reconciler = new Reconciler({
        store,
        paths,
        log: (line) => lines.push(line),
        environmentRetention: RETENTION,
        runtime: {
          reconcile: () => undefined,
          routableReplicas: () => [],
          hasReplicas: () => false,
          replicaShortfalls: () => new Map(),
          pythonsInUse: () => new Set([environmentPython(environmentDir(paths.venvs, key(12)))]),
        },
      });
      await reconciler.run();
      await eventually('the removals done', async () => (fs.existsSync(stale) ? undefined : true));
      assert.deepEqual(
        [10, 11, 12].map((n) => fs.existsSync(environmentDir(paths.venvs, key(n)))),
        [true, false, true],
      );
      assert.equal(fs.existsSync(stale), false);
      assert.ok(lines.includes(`removed Python environment ${key(11)}: unused for 86400 s`), lines.join('\n'));
      assert.ok(lines.some((line) => line.startsWith(`removed ${path.basename(stale)}`)));
    } finally {
      await store.close();
    }
  });
});
