import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadOrCreateSecretKey, SECRET_KEY_BYTES, SecretBox } from '../../src/secrets/secret-box';
import { MissingSecretError, storeSecretResolver } from '../../src/secrets/secret-values';
import { Runtime } from '../../src/node/runtime/runtime';
import { replicaFailure } from '../../src/activities/scaling';
import { upsertSecretSchema } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { eventually } from '../helpers/ports';

describe('secrets', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-secrets-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('the secret box', () => {
    it('seals with a fresh IV each time and opens only with the same key, name and bytes', () => {
      const box = SecretBox.fromKeyFile(path.join(dir, 'secrets.key'));
      const first = box.seal('hf_access_token', 'hf_abc');
      const second = box.seal('hf_access_token', 'hf_abc');
      assert.equal(first.iv.length, 12);
      assert.notDeepEqual(first.iv, second.iv);
      assert.notDeepEqual(first.ciphertext, second.ciphertext);
      assert.equal(box.open('hf_access_token', first), 'hf_abc');
      assert.equal(box.open('hf_access_token', second), 'hf_abc');
      assert.ok(!first.ciphertext.includes(Buffer.from('hf_abc')));

      const otherKey = SecretBox.fromKeyFile(path.join(dir, 'other.key'));
      assert.throws(() => otherKey.open('hf_access_token', first), /secret "hf_access_token" cannot be decrypted/);
      assert.throws(() => box.open('another_name', first), /cannot be decrypted/); // the name is authenticated
      const tampered = { ...first, ciphertext: Buffer.from(first.ciphertext) };
      tampered.ciphertext[0]! ^= 1;
      assert.throws(() => box.open('hf_access_token', tampered), /cannot be decrypted/);
      const badTag = { ...first, auth_tag: Buffer.from(first.auth_tag) };
      badTag.auth_tag[0]! ^= 1;
      assert.throws(() => box.open('hf_access_token', badTag), /cannot be decrypted/);
    });

    it('creates a 32-byte key with mode 0600 once and never replaces it', () => {
      const file = path.join(dir, 'home', 'secrets.key');
      const key = loadOrCreateSecretKey(file);
      assert.equal(key.length, SECRET_KEY_BYTES);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(loadOrCreateSecretKey(file), key);
      assert.deepEqual(fs.readdirSync(path.dirname(file)), ['secrets.key']); // no temporary file left
      fs.writeFileSync(file, 'short');
      assert.throws(() => loadOrCreateSecretKey(file), /holds 5 bytes, not 32/);
      assert.equal(fs.readFileSync(file, 'utf8'), 'short');
    });

    it('gives every process the same key when many create it at once', async () => {
      const file = path.join(dir, 'secrets.key');
      const module = path.resolve(__dirname, '../../src/secrets/secret-box.js');
      const script = `process.stdout.write(require(${JSON.stringify(module)}).loadOrCreateSecretKey(${JSON.stringify(file)}).toString('hex'))`;
      const keys = await Promise.all(
        Array.from(
          { length: 8 },
          () =>
            new Promise<string>((resolve, reject) => {
              const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
              let out = '';
              child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
              child.once('error', reject);
              child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
            }),
        ),
      );
      assert.equal(new Set(keys).size, 1);
      assert.equal(keys[0], fs.readFileSync(file).toString('hex'));
      assert.deepEqual(fs.readdirSync(dir), ['secrets.key']);
    });
  });

  describe('the store', () => {
    it('keeps the id across rotation, lists no values, reads ciphertexts by name and deletes', async () => {
      const store = new SqliteStore(path.join(dir, 'gantry.db'));
      try {
        const box = SecretBox.fromKeyFile(path.join(dir, 'secrets.key'));
        const created = await store.upsertSecret('hf_access_token', box.seal('hf_access_token', 'one'));
        assert.equal(created.created, true);
        const rotated = await store.upsertSecret('hf_access_token', box.seal('hf_access_token', 'two'));
        assert.equal(rotated.created, false);
        assert.equal(rotated.secret.id, created.secret.id);
        assert.equal(rotated.secret.created_at, created.secret.created_at);
        await store.upsertSecret('b.key', box.seal('b.key', 'three'));
        const listed = await store.listSecrets();
        assert.deepEqual(
          listed.map((secret) => secret.name),
          ['b.key', 'hf_access_token'],
        );
        assert.deepEqual(Object.keys(listed[0]!).sort(), ['created_at', 'id', 'name', 'updated_at']);
        const sealed = await store.readSecretCiphertexts(['hf_access_token', 'absent']);
        assert.deepEqual(
          sealed.map((secret) => secret.name),
          ['hf_access_token'],
        );
        assert.equal(box.open('hf_access_token', sealed[0]!), 'two');

        const resolve = storeSecretResolver(store, path.join(dir, 'secrets.key'));
        assert.deepEqual(await resolve(['hf_access_token', 'b.key']), { hf_access_token: 'two', 'b.key': 'three' });
        await assert.rejects(resolve(['hf_access_token', 'zz', 'absent']), (error: Error) => error instanceof MissingSecretError && error.message === 'secret "absent" is not set');

        assert.equal(await store.deleteSecret('b.key'), true);
        assert.equal(await store.deleteSecret('b.key'), false);
        assert.deepEqual(
          (await store.listSecrets()).map((secret) => secret.name),
          ['hf_access_token'],
        );

        await store.appendAudit({ model_id: null, actor: 'admin', action: 'SET_SECRET', target: 'hf_access_token', details: { name: 'hf_access_token' } });
        assert.deepEqual(
          (await store.listAudit(null)).map((entry) => entry.action),
          ['SET_SECRET'],
        );
      } finally {
        await store.close();
      }
    });
  });

  it('checks names and values at the API boundary', () => {
    assert.ok(upsertSecretSchema.safeParse({ name: 'hf_access_token', value: 'x' }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'has space', value: 'x' }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'a'.repeat(129), value: 'x' }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'ok', value: '' }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'ok', value: 'x'.repeat(64 * 1024 + 1) }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'ok' }).success);
    assert.ok(!upsertSecretSchema.safeParse({ name: 'ok', value: 'x', extra: 1 }).success);
  });

  it('a replica whose declared secret is not set is not started, and the deploy failure says so exactly', async () => {
    const changes: number[] = [];
    const runtime = new Runtime({
      nodeId: 'n',
      baseBackoffMs: 60_000,
      resolveSecrets: async (names) => {
        throw new MissingSecretError(names[0]!);
      },
      onChange: () => changes.push(1),
      log: () => undefined,
    });
    runtime.reconcile([
      {
        replicas: 1,
        spec: {
          deploymentId: 'd1',
          kind: 'published',
          python: '/nonexistent/python',
          packageDir: dir,
          revision: 0,
          environment: {},
          secretNames: ['hf_access_token'],
          logsDir: dir,
        },
      },
    ]);
    assert.equal(runtime.snapshot()[0]!.state, 'STARTING');
    const replica = await eventually('the replica reported', async () => runtime.snapshot().find((r) => r.last_error));
    assert.equal(replica.last_error, 'secret "hf_access_token" is not set');
    assert.equal(replica.pid, null);
    assert.equal(replicaFailure([replica]), 'secret "hf_access_token" is not set');
    await runtime.stopAll(0);
  });
});
