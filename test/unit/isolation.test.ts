/**
 * The parts of model isolation that need no running stack: pip options in requirement lines,
 * the isolation settings, sandbox uids from the store, the sandbox's command line and the
 * permissions shared trees get; and the launcher itself on this machine (it runs as root here).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipOptionsOf, refusedRequirement } from '../../src/build/requirement-options';
import { ConfigError, loadConfig } from '../../src/config';
import { endBuildUser, exposeInSandbox, giveTree, probeSandbox, resolveIsolation, sandboxedCommand, sandboxUid, shareReadOnly, type Sandbox } from '../../src/sandbox/sandbox';
import { DEFAULT_SANDBOX_UID_BASE, defaultSandboxUidBase, SANDBOX_UIDS_PER_HOME } from '../../src/shared/isolation';
import { MODEL_SERVER_DIR, SANDBOX_LAUNCHER_SCRIPT } from '../../src/shared/project-paths';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';

// The interpreter by its real path, as resolveIsolation gives it (the launcher searches no PATH).
const python = execFileSync(process.env.GANTRY_PYTHON || 'python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

describe('pip options in requirement lines', () => {
  it('finds options at the start of a line and after a requirement, by their long names', () => {
    assert.deepEqual(pipOptionsOf('-r /etc/passwd'), ['--requirement']);
    assert.deepEqual(pipOptionsOf('--index-url=https://mirror/simple'), ['--index-url']);
    assert.deepEqual(pipOptionsOf('-ihttps://mirror/simple'), ['--index-url']);
    assert.deepEqual(pipOptionsOf('numpy==2.0 --global-option=--x'), ['--global-option']);
    assert.deepEqual(pipOptionsOf('scikit-learn>=1.3; python_version >= "3.9"'), []);
    assert.deepEqual(pipOptionsOf('pkg @ https://example.com/pkg-1.0-py3-none-any.whl'), []);
  });

  it('refuses every option by default, naming the line and the option', () => {
    for (const line of [
      '-r /home/gantry/.gantry/admin-api-key',
      '-c constraints.txt',
      '-e .',
      '--extra-index-url https://evil/simple',
      '--find-links /tmp',
      '--trusted-host evil',
    ]) {
      const refusal = refusedRequirement(['numpy==2.0', line], []);
      assert.ok(refusal, line);
      assert.ok(refusal.includes(`"${line}"`), refusal);
      assert.match(refusal, /GANTRY_PIP_ALLOWED_OPTIONS allows none/);
    }
    assert.equal(refusedRequirement(['numpy==2.0', 'scikit-learn'], []), undefined);
  });

  it('allows the options the operator lists, by long or short name, and no others', () => {
    assert.equal(refusedRequirement(['--extra-index-url https://mirror/simple', 'numpy'], ['--extra-index-url']), undefined);
    assert.equal(refusedRequirement(['-i https://mirror/simple'], ['--index-url']), undefined);
    assert.equal(refusedRequirement(['--index-url https://mirror/simple'], ['-i']), undefined);
    assert.match(refusedRequirement(['-r /etc/passwd'], ['--extra-index-url']) ?? '', /uses the pip option --requirement.*allows --extra-index-url/);
  });
});

describe('isolation settings', () => {
  it('defaults to auto, a uid range chosen by GANTRY_HOME and no pip options', () => {
    const config = loadConfig({});
    assert.deepEqual(config.isolation, { mode: 'auto', uidBase: defaultSandboxUidBase(path.resolve('.gantry')) });
    const other = loadConfig({ GANTRY_HOME: '/srv/other-gantry' }).isolation.uidBase;
    assert.notEqual(other, config.isolation.uidBase, 'two homes, two ranges');
    for (const base of [config.isolation.uidBase, other]) {
      assert.ok(base >= DEFAULT_SANDBOX_UID_BASE && (base - DEFAULT_SANDBOX_UID_BASE) % SANDBOX_UIDS_PER_HOME === 0);
      assert.ok(base + SANDBOX_UIDS_PER_HOME - 1 <= 4_294_967_294, 'the whole range is valid uids');
    }
    assert.deepEqual(config.pipAllowedOptions, []);
  });

  it('reads GANTRY_ISOLATION, GANTRY_SANDBOX_UID_BASE and GANTRY_PIP_ALLOWED_OPTIONS', () => {
    const config = loadConfig({ GANTRY_ISOLATION: 'sandbox', GANTRY_SANDBOX_UID_BASE: '300000', GANTRY_PIP_ALLOWED_OPTIONS: ' --extra-index-url, --index-url ' });
    assert.deepEqual(config.isolation, { mode: 'sandbox', uidBase: 300_000 });
    assert.deepEqual(config.pipAllowedOptions, ['--extra-index-url', '--index-url']);
  });

  it('refuses an unknown mode, a uid base among real users and an option list that is not option names', () => {
    assert.throws(
      () => loadConfig({ GANTRY_ISOLATION: 'bubblewrap' }),
      (error: unknown) => error instanceof ConfigError && /GANTRY_ISOLATION/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ GANTRY_SANDBOX_UID_BASE: '1000' }),
      (error: unknown) => error instanceof ConfigError && /GANTRY_SANDBOX_UID_BASE/.test(error.message),
    );
    assert.throws(
      () => loadConfig({ GANTRY_PIP_ALLOWED_OPTIONS: 'https://evil/simple' }),
      (error: unknown) => error instanceof ConfigError && /GANTRY_PIP_ALLOWED_OPTIONS/.test(error.message),
    );
  });
});

describe('sandbox users', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-sandbox-users-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives each model its own offset, the same one every time, and never one a deleted model had', async () => {
    const store = new SqliteStore(path.join(dir, 'gantry.db'));
    const a = await store.findOrCreateModel('a');
    const b = await store.findOrCreateModel('b');
    const first = await store.sandboxUserOffset(a.id);
    assert.ok(first >= 1, 'offset 0 is the probe uid');
    assert.equal(await store.sandboxUserOffset(a.id), first);
    const second = await store.sandboxUserOffset(b.id);
    assert.notEqual(second, first);
    // Even if the row of the highest offset goes (no code deletes them), AUTOINCREMENT does not hand it out again.
    (store as unknown as { db: { prepare(sql: string): { run(...args: unknown[]): unknown } } }).db.prepare('DELETE FROM sandbox_users WHERE owner = ?').run(b.id);
    const third = await store.sandboxUserOffset('another-model');
    assert.ok(third > second);
    await store.close();
  });

  it('turns offsets into uids from the base and refuses one past the last valid uid', () => {
    const sandbox: Sandbox = { python, home: '/tmp/home', uidBase: 4_294_967_290 };
    assert.equal(sandboxUid(sandbox, 4), 4_294_967_294);
    assert.throws(() => sandboxUid(sandbox, 5), /past the last valid uid/);
    const ranged: Sandbox = { python, home: '/tmp/home', uidBase: DEFAULT_SANDBOX_UID_BASE };
    assert.equal(sandboxUid(ranged, SANDBOX_UIDS_PER_HOME - 1), DEFAULT_SANDBOX_UID_BASE + SANDBOX_UIDS_PER_HOME - 1);
    assert.throws(() => sandboxUid(ranged, SANDBOX_UIDS_PER_HOME), /given out all its 1048576 sandbox uids/);
  });
});

describe('the sandbox command line and shared trees', () => {
  it('runs the launcher with the base Python in isolated mode, GANTRY_HOME hidden and the model server shown', () => {
    const sandbox: Sandbox = { python: '/usr/bin/python3', home: '/srv/gantry', uidBase: DEFAULT_SANDBOX_UID_BASE };
    const line = sandboxedCommand(
      sandbox,
      { uid: 2_000_000_007, readOnly: ['/srv/gantry/builds/d1'], writable: ['/srv/gantry/venvs/.k.partial'], cwd: '/srv/gantry/builds/d1' },
      '/srv/gantry/venvs/k/bin/python',
      ['-u', 'x.py'],
      { PATH: '.', LD_PRELOAD: './x.so', GREETING: 'hi' },
    );
    assert.equal(line.command, '/usr/bin/python3');
    // The launcher runs as root: the model's environment (a PATH, an LD_PRELOAD its config set) is
    // not its own, only data it hands to the command at the exec.
    assert.deepEqual(Object.keys(line.env).sort(), ['GANTRY_SANDBOX_ENV', 'PATH']);
    assert.equal(line.env.PATH, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    assert.deepEqual(JSON.parse(line.env.GANTRY_SANDBOX_ENV!), { PATH: '.', LD_PRELOAD: './x.so', GREETING: 'hi' });
    assert.deepEqual(line.args, [
      '-I',
      '-S',
      SANDBOX_LAUNCHER_SCRIPT,
      'run',
      '--uid',
      '2000000007',
      '--gid',
      '2000000007',
      '--hide',
      '/srv/gantry',
      '--ro',
      '/srv/gantry/builds/d1',
      '--ro',
      MODEL_SERVER_DIR,
      '--rw',
      '/srv/gantry/venvs/.k.partial',
      '--scratch',
      '/srv/gantry/sandbox/2000000007',
      '--cwd',
      '/srv/gantry/builds/d1',
      '--',
      '/srv/gantry/venvs/k/bin/python',
      '-u',
      'x.py',
    ]);
  });

  it('makes a tree root-owned, readable by all and writable by none, and gives one to a uid', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-share-'));
    try {
      fs.mkdirSync(path.join(dir, 'sub'), { mode: 0o700 });
      fs.writeFileSync(path.join(dir, 'sub', 'secret.py'), 'x', { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'tool'), 'x', { mode: 0o4777 });
      fs.symlinkSync('/etc/hostname', path.join(dir, 'link'));
      giveTree(dir, 2_000_000_009);
      assert.equal(fs.lstatSync(path.join(dir, 'link')).uid, 2_000_000_009);
      assert.equal(fs.statSync('/etc/hostname').uid, 0, 'a link is never followed');
      shareReadOnly(dir);
      const mode = (file: string): number => fs.lstatSync(path.join(dir, file)).mode & 0o7777;
      assert.equal(mode(''), 0o755);
      assert.equal(mode('sub'), 0o755);
      assert.equal(mode('sub/secret.py'), 0o644);
      assert.equal(mode('tool'), 0o755);
      for (const file of ['', 'sub', 'sub/secret.py', 'tool', 'link']) assert.equal(fs.lstatSync(path.join(dir, file)).uid, 0, file);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Uids below every default range (which GANTRY_HOMEs of test stacks running alongside use). */
const LAUNCHER_TEST_UID_BASE = 150_000;

describe('the sandbox launcher on this machine (Gantry runs as root here)', () => {
  let home: string;
  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-launcher-'));
    fs.writeFileSync(path.join(home, 'gantry.db'), 'the store');
    fs.mkdirSync(path.join(home, 'builds', 'd1'), { recursive: true });
    fs.writeFileSync(path.join(home, 'builds', 'd1', 'model.py'), 'the model');
    fs.mkdirSync(path.join(home, 'builds', 'd2'), { recursive: true });
    fs.writeFileSync(path.join(home, 'builds', 'd2', 'model.py'), 'another model');
    shareReadOnly(path.join(home, 'builds'));
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('probes successfully, and auto and sandbox modes use it', async () => {
    assert.equal(await probeSandbox(python, home, LAUNCHER_TEST_UID_BASE), undefined);
    for (const mode of ['auto', 'sandbox'] as const) {
      const resolved = await resolveIsolation(mode, python, home, LAUNCHER_TEST_UID_BASE);
      assert.deepEqual(resolved.sandbox, { python, home, uidBase: LAUNCHER_TEST_UID_BASE });
      assert.match(resolved.message, /^model isolation: sandbox/);
    }
    const off = await resolveIsolation('off', python, home, LAUNCHER_TEST_UID_BASE);
    assert.equal(off.sandbox, undefined);
    assert.equal(off.level, 'warn');
  });

  it('warns in auto mode and refuses to start in sandbox mode when the sandbox does not work', async () => {
    const missing = path.join(home, 'no-such-python');
    const auto = await resolveIsolation('auto', missing, home, LAUNCHER_TEST_UID_BASE);
    assert.equal(auto.sandbox, undefined);
    assert.equal(auto.level, 'warn');
    assert.match(auto.message, /model isolation unavailable: the sandbox probe failed .*GANTRY_ISOLATION=off/);
    await assert.rejects(
      resolveIsolation('sandbox', missing, home, LAUNCHER_TEST_UID_BASE),
      (error: Error) => error.name === 'IsolationUnavailableError' && /GANTRY_ISOLATION=sandbox/.test(error.message),
    );
  });

  it('runs a command as the uid, without capabilities, seeing its package read-only and nothing else of GANTRY_HOME', () => {
    const sandbox: Sandbox = { python, home, uidBase: LAUNCHER_TEST_UID_BASE };
    const uid = LAUNCHER_TEST_UID_BASE + 42;
    const package1 = path.join(home, 'builds', 'd1');
    const script = [
      'import os, json',
      'def attempt(action):',
      '    try:',
      '        action()',
      '        return "ok"',
      '    except OSError as exc:',
      '        return os.strerror(exc.errno)',
      'status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)',
      'print(json.dumps({',
      '  "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),',
      '  "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),',
      `  "own": open(${JSON.stringify(path.join(package1, 'model.py'))}).read(),`,
      `  "store": attempt(lambda: open(${JSON.stringify(path.join(home, 'gantry.db'))}).read()),`,
      `  "other": attempt(lambda: open(${JSON.stringify(path.join(home, 'builds', 'd2', 'model.py'))}).read()),`,
      `  "write": attempt(lambda: open(${JSON.stringify(path.join(package1, 'planted.py'))}, "w")),`,
      `  "scratch": attempt(lambda: open(os.path.join(os.environ["HOME"], "cache"), "w")),`,
      '  "signal_init": attempt(lambda: os.kill(1, 0)),',
      '  "greeting": os.environ.get("GREETING"), "path": os.environ.get("PATH"),',
      '}))',
    ].join('\n');
    // PATH '.' is the model's own business once it runs as its uid; the launcher, as root, never searched it.
    const line = sandboxedCommand(sandbox, { uid, readOnly: [package1], cwd: package1 }, python, ['-I', '-c', script], {
      PATH: '.',
      HOME: path.join(home, 'sandbox', String(uid)),
      GREETING: 'from the config',
    });
    const result = spawnSync(line.command, line.args, { encoding: 'utf8', env: line.env, cwd: package1 });
    assert.equal(result.status, 0, result.stderr);
    const seen = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(seen, {
      uid,
      gid: uid,
      groups: [],
      cwd: package1,
      cap_eff: '0000000000000000',
      cap_bnd: '0000000000000000',
      no_new_privs: '1',
      own: 'the model',
      store: 'No such file or directory',
      other: 'No such file or directory',
      write: 'Read-only file system',
      scratch: 'ok',
      signal_init: 'Operation not permitted',
      greeting: 'from the config',
      path: '.',
    });
    assert.equal(fs.existsSync(path.join(package1, 'planted.py')), false);
    assert.equal(fs.statSync(path.join(home, 'sandbox', String(uid))).uid, uid, "the scratch directory is the uid's");
  });

  it("ends every process of a build's uid, also one that left its process group, and removes its scratch directory", async function () {
    this.timeout(30_000);
    const sandbox: Sandbox = { python, home, uidBase: LAUNCHER_TEST_UID_BASE };
    const uid = LAUNCHER_TEST_UID_BASE + 44;
    const package1 = path.join(home, 'builds', 'd1');
    // A build backend that daemonises: a grandchild in a session of its own, sleeping an hour.
    const script = [
      'import os, sys, time',
      'if os.fork() == 0:',
      '    os.setsid()',
      '    if os.fork() == 0:',
      '        print(os.getpid(), flush=True)',
      '        null = os.open(os.devnull, os.O_WRONLY)',
      '        os.dup2(null, 1)',
      '        os.dup2(null, 2)',
      '        time.sleep(3600)',
      '    os._exit(0)',
      'os.wait()',
    ].join('\n');
    const line = sandboxedCommand(sandbox, { uid, readOnly: [package1], cwd: package1 }, python, ['-I', '-c', script], { PATH: process.env.PATH });
    const result = spawnSync(line.command, line.args, { encoding: 'utf8', env: line.env, timeout: 20_000 });
    const daemon = Number(result.stdout.trim());
    assert.ok(daemon > 0, result.stderr);
    assert.equal(fs.readFileSync(`/proc/${daemon}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], String(uid), 'the daemon outlived its command');
    await endBuildUser(sandbox, uid);
    assert.equal(fs.existsSync(`/proc/${daemon}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${daemon}/status`, 'utf8')), false, 'the daemon is gone');
    assert.equal(fs.existsSync(path.join(home, 'sandbox', String(uid))), false);
  });

  it('shows a directory made after the start (a new development revision) to a running sandbox, read-only', async () => {
    const sandbox: Sandbox = { python, home, uidBase: LAUNCHER_TEST_UID_BASE };
    const uid = LAUNCHER_TEST_UID_BASE + 43;
    const package1 = path.join(home, 'builds', 'd1');
    const revision = path.join(home, 'builds', 'd1.r1');
    // Reads a line naming a file on stdin, answers with what reading it and creating a file beside it gave.
    const script = [
      'import os, sys',
      'for line in sys.stdin:',
      '    path = line.strip()',
      '    try:',
      '        read = open(path).read()',
      '    except OSError as exc:',
      '        read = os.strerror(exc.errno)',
      '    try:',
      '        open(os.path.join(os.path.dirname(path), "planted.py"), "w")',
      '        write = "ok"',
      '    except OSError as exc:',
      '        write = os.strerror(exc.errno)',
      '    print(read + "|" + write, flush=True)',
    ].join('\n');
    const line = sandboxedCommand(sandbox, { uid, readOnly: [package1], cwd: package1 }, python, ['-I', '-c', script], { PATH: process.env.PATH });
    const child = spawn(line.command, line.args, { env: line.env, stdio: ['pipe', 'pipe', 'inherit'] });
    const answers: string[] = [];
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      answers.push(...lines);
    });
    const ask = async (file: string): Promise<string> => {
      const before = answers.length;
      child.stdin.write(`${file}\n`);
      for (let waited = 0; answers.length === before; waited += 20) {
        if (waited > 10_000) throw new Error('no answer from the sandboxed process');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return answers[before]!;
    };
    try {
      fs.mkdirSync(revision);
      fs.writeFileSync(path.join(revision, 'model.py'), 'revision 1');
      shareReadOnly(revision);
      assert.equal(await ask(path.join(revision, 'model.py')), 'No such file or directory|No such file or directory');
      await exposeInSandbox(sandbox, child.pid!, revision);
      assert.equal(await ask(path.join(revision, 'model.py')), 'revision 1|Read-only file system');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
