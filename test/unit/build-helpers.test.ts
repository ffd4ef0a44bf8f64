import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureAdminKey } from '../../src/auth/api-keys';
import { hashApiKey, keyFromAuthorization } from '../../src/auth/key-hash';
import { environmentKey, normaliseRequirements, pipFailureCause, runStreaming } from '../../src/build/python-environments';
import { appendLog, followLog, LineSplitter, logFile, readLogTail } from '../../src/logs/deployment-logs';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import type { LogEntry } from '../../src/shared/views';

describe('Python environment keys', () => {
  it('do not depend on order, duplicates or spacing', () => {
    assert.deepEqual(normaliseRequirements([' numpy==2.0 ', 'scikit-learn  ==1.7', 'numpy==2.0', '']), ['numpy==2.0', 'scikit-learn ==1.7']);
    assert.equal(environmentKey('3.11', ['a', 'b']), environmentKey('3.11', ['b', 'a', 'a']));
    assert.notEqual(environmentKey('3.11', ['a']), environmentKey('3.12', ['a']));
    assert.notEqual(environmentKey('3.11', ['a']), environmentKey('3.11', ['a', 'b']));
  });

  it('pick the telling line of a pip failure', () => {
    const lines = [
      'Looking in links: /opt/wheels',
      'ERROR: Could not find a version that satisfies the requirement nope==1 (from versions: none)',
      'ERROR: No matching distribution found for nope==1',
    ];
    assert.equal(pipFailureCause(lines), 'Could not find a version that satisfies the requirement nope==1 (from versions: none)');
  });
});

describe('build subprocesses', () => {
  it("run without the worker's GANTRY_* and TEMPORAL_* variables (pip runs packages' build code)", async () => {
    const saved = { ...process.env };
    process.env.GANTRY_WEBHOOK_SECRET = 'webhook-secret-for-the-test';
    process.env.TEMPORAL_ADDRESS = '127.0.0.1:7233';
    try {
      const lines: string[] = [];
      const code = await runStreaming(
        'python3',
        ['-c', 'import os; print(sorted(k for k in os.environ if k.startswith(("GANTRY_", "TEMPORAL_")))); print(bool(os.environ.get("PATH")))'],
        { onLine: (line) => lines.push(line) },
      );
      assert.equal(code, 0);
      assert.deepEqual(lines, ['[]', 'True']);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  it('kills the whole process group of a command when its signal aborts, and rejects with the reason', async () => {
    // The shell starts a background sleeper (a build backend pip left behind, say), then sleeps itself.
    const lines: string[] = [];
    const stop = new AbortController();
    const running = runStreaming('sh', ['-c', 'sleep 300 & echo "$!"; sleep 300'], {
      onLine: (line) => {
        lines.push(line);
        stop.abort(new Error('deadline passed'));
      },
      signal: stop.signal,
    });
    await assert.rejects(running, /deadline passed/);
    const background = Number(lines[0]);
    assert.ok(background > 0, `the background pid: ${lines.join(' | ')}`);
    // Gone, or a zombie waiting to be reaped by whoever inherited it: no longer running either way.
    const ended = (): boolean => {
      try {
        const stat = fs.readFileSync(`/proc/${background}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
      } catch {
        return true;
      }
    };
    let gone = ended();
    for (let i = 0; i < 100 && !gone; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      gone = ended();
    }
    assert.ok(gone, 'the background process of the group was killed too');
  });

  it('refuses to start a command when its signal has already aborted', async () => {
    const stop = new AbortController();
    stop.abort(new Error('cancelled'));
    await assert.rejects(runStreaming('sh', ['-c', 'exit 0'], { onLine: () => {}, signal: stop.signal }), /cancelled/);
  });
});

describe('deployment logs', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-logs-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('returns the last lines in order, also across read chunks and multi-byte text', () => {
    for (let i = 0; i < 3000; i++) appendLog(dir, 'd1', i % 2 ? 'build' : 'replica-x', [`line ${i} — ünïcode ✓ ${'x'.repeat(50)}`]);
    const tail = readLogTail(dir, 'd1', 5);
    assert.deepEqual(
      tail.map((entry) => entry.message.split(' ')[1]),
      ['2995', '2996', '2997', '2998', '2999'],
    );
    assert.ok(tail.every((entry) => entry.message.includes('ünïcode ✓')));
    assert.equal(readLogTail(dir, 'd1', 10_000).length, 3000);
    assert.deepEqual(readLogTail(dir, 'missing', 5), []);
  });

  it('follows a log from where its tail ended: every appended line once, a half-written one once whole', async () => {
    appendLog(dir, 'd1', 'build', ['one', 'two', 'three']);
    const got: string[][] = [];
    const stop = followLog(dir, 'd1', 2, (entries: LogEntry[]) => got.push(entries.map((entry) => entry.message)), 20);
    try {
      assert.deepEqual(got, [['two', 'three']], 'the tail first');
      appendLog(dir, 'd1', 'replica-x', ['four', 'five']);
      const half = JSON.stringify({ ts: new Date().toISOString(), source: 'replica-x', message: 'six' });
      fs.appendFileSync(logFile(dir, 'd1'), half.slice(0, 10));
      const deadline = Date.now() + 5000;
      while (got.flat().length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      fs.appendFileSync(logFile(dir, 'd1'), `${half.slice(10)}\n`);
      while (got.flat().length < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(got.flat(), ['two', 'three', 'four', 'five', 'six']);
    } finally {
      stop();
    }
  });

  it('splits streamed chunks into whole lines', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.push('a\nb'), ['a']);
    assert.deepEqual(splitter.push('c\r\nd'), ['bc']);
    assert.deepEqual(splitter.flush(), ['d']);
  });
});

describe('API keys', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-keys-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads Api-Key and Bearer authorization headers', () => {
    assert.equal(keyFromAuthorization('Api-Key gtk_abc'), 'gtk_abc');
    assert.equal(keyFromAuthorization('bearer gtk_abc'), 'gtk_abc');
    assert.equal(keyFromAuthorization('Basic x'), undefined);
    assert.equal(keyFromAuthorization(undefined), undefined);
  });

  it('generates a key once, keeps it in a 0600 file, and reuses it on the next start', async () => {
    const file = path.join(dir, 'admin-api-key');
    const first = await ensureAdminKey(store, undefined, file);
    assert.match(first.generated ?? '', /^gtk_[A-Za-z0-9_-]{40}$/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(await store.findApiKeyByHash(hashApiKey(first.generated!)));
    const second = await ensureAdminKey(store, undefined, file);
    assert.equal(second.generated, undefined);
    assert.equal(await store.countApiKeys(), 1);
  });

  it('ensures GANTRY_API_KEY as an admin key without writing a file', async () => {
    const file = path.join(dir, 'admin-api-key');
    await ensureAdminKey(store, 'my-configured-key-123', file);
    await ensureAdminKey(store, 'my-configured-key-123', file);
    assert.equal(await store.countApiKeys(), 1);
    assert.ok(await store.findApiKeyByHash(hashApiKey('my-configured-key-123')));
    assert.equal(fs.existsSync(file), false);
  });
});

describe('modelEnvironment', () => {
  it("keeps Gantry's settings and secrets away from model code", async () => {
    const { modelEnvironment } = await import('../../src/shared/model-environment');
    const env = modelEnvironment({ PATH: '/bin', GANTRY_API_KEY: 'secret', TEMPORAL_ADDRESS: 'x:1', HOME: '/root' }, { GREETING: 'hi' }, { GANTRY_EVENTS_FD: '3' });
    assert.deepEqual(env, { PATH: '/bin', HOME: '/root', GREETING: 'hi', GANTRY_EVENTS_FD: '3' });
  });

  it("passes on only the host variables Python and pip need, never the host's others", async () => {
    const { modelEnvironment } = await import('../../src/shared/model-environment');
    const host = {
      PATH: '/bin',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      HTTPS_PROXY: 'http://proxy:3128',
      PIP_INDEX_URL: 'https://mirror/simple',
      AWS_SECRET_ACCESS_KEY: 'host secret',
      PYTHONPATH: '/somewhere',
      NODE_OPTIONS: '--inspect',
      GANTRY_WEBHOOK_SECRET: 'webhook secret',
      TEMPORAL_NAMESPACE: 'default',
    };
    const env = modelEnvironment(host, { AWS_REGION: 'eu-west-1' }, { HOME: '/scratch', PYTHONDONTWRITEBYTECODE: '1' });
    assert.deepEqual(env, {
      PATH: '/bin',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      TZ: 'UTC',
      HTTPS_PROXY: 'http://proxy:3128',
      PIP_INDEX_URL: 'https://mirror/simple',
      AWS_REGION: 'eu-west-1',
      HOME: '/scratch',
      PYTHONDONTWRITEBYTECODE: '1',
    });
  });
});
