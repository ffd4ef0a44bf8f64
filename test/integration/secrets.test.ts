/**
 * Secrets end to end on the real stack: a model whose load() reads secrets["hf_access_token"]
 * fails to deploy until `gantry secrets set` (value on standard input), then serves; a rotated
 * value reaches replicas started after the rotation; and the value appears nowhere it must
 * not: no file under GANTRY_HOME (the database holds it only encrypted), nothing the stack
 * printed, no API answer, no audit entry and no workflow history.
 */
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { TestStack, type CliResult } from '../helpers/stack';

const FIXTURE = path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', 'needs-secret');
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

interface Deployment {
  id: string;
  model_id: string;
  status: string;
  status_message: string | null;
}

describe('secrets (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  /** Everything the test received from the API and the CLI: searched for the values at the end. */
  const received: string[] = [];
  const value = `hf_${randomBytes(24).toString('hex')}`;
  const rotated = `hf_${randomBytes(24).toString('hex')}`;
  let deployment: Deployment;

  async function api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
    const answer = await stack.api(method, route, body);
    received.push(JSON.stringify(answer.body ?? null));
    return answer;
  }

  async function cli(args: string[], input?: string): Promise<CliResult> {
    const result = await stack.cli(args, { input });
    received.push(result.stdout, result.stderr);
    return result;
  }

  async function push(): Promise<{ code: number; deployment: Deployment }> {
    const result = await cli(['push', FIXTURE, '--wait', '--output', 'json']);
    return { code: result.code, deployment: JSON.parse(result.stdout) };
  }

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
  });

  after(async () => {
    await stack?.destroy();
  });

  it('creates the key at start: 32 bytes, mode 0600', () => {
    const key = path.join(stack.home, 'secrets.key');
    assert.equal(fs.statSync(key).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(key).length, 32);
  });

  it('answers bad input with 4xx JSON and changes nothing', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/v1/secrets', { name: 'has space', value: 'x' }, 422, /name/],
      ['POST', '/v1/secrets', { name: 'a'.repeat(129), value: 'x' }, 422, /name/],
      ['POST', '/v1/secrets', { name: 'ok_name', value: '' }, 422, /non-empty/],
      ['POST', '/v1/secrets', { name: 'ok_name', value: 'x'.repeat(64 * 1024 + 1) }, 422, /at most 65536 bytes/],
      ['POST', '/v1/secrets', { name: 'ok_name' }, 422, /value/],
      ['POST', '/v1/secrets', { value: 'x' }, 422, /name/],
      ['POST', '/v1/secrets', { name: 'ok_name', value: 5 }, 422, /value/],
      ['POST', '/v1/secrets', { name: 'ok_name', value: 'x', team: 'a' }, 422, /team/],
      ['DELETE', '/v1/secrets/unknown_secret', undefined, 404, /secret unknown_secret not found/],
      ['DELETE', '/v1/secrets/bad%20name', undefined, 422, /secret name/],
    ];
    for (const [method, route, body, status, message] of cases) {
      const answer = await api(method, route, body);
      assert.equal(answer.status, status, `${method} ${route} ${JSON.stringify(body)?.slice(0, 80)}: ${JSON.stringify(answer.body)}`);
      assert.match(answer.body.error.message, message);
    }
    const notJson = await fetch(`${stack.apiUrl}/v1/secrets`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${stack.apiKey}`, 'content-type': 'application/json' },
      body: '{"name": "x", "value": ',
    });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: { code: string } }).error.code, 'bad_request');
    assert.deepEqual((await api('GET', '/v1/secrets')).body, { secrets: [] });
    assert.deepEqual((await api('GET', '/v1/audit_logs')).body, { audit_logs: [] });
  });

  it('fails the deploy with DEPLOY_FAILED: secret "hf_access_token" is not set', async () => {
    const failed = await push();
    assert.equal(failed.code, 1);
    assert.equal(failed.deployment.status, 'DEPLOY_FAILED');
    assert.equal(failed.deployment.status_message, 'secret "hf_access_token" is not set');
  });

  it('refuses a value on the command line, without echoing it', async () => {
    const refused = await cli(['secrets', 'set', 'hf_access_token', 'not-the-real-value-zz9']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /takes no value on the command line/);
    assert.ok(!refused.stderr.includes('not-the-real-value-zz9'));
    const empty = await cli(['secrets', 'set', 'hf_access_token'], '');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /the secret value is empty/);
    assert.deepEqual((await api('GET', '/v1/secrets')).body, { secrets: [] });
  });

  it('serves once `gantry secrets set` has the value from standard input', async () => {
    const set = await cli(['secrets', 'set', 'hf_access_token', '--output', 'json'], `${value}\n`);
    assert.equal(set.code, 0, set.stderr);
    const secret = JSON.parse(set.stdout);
    assert.deepEqual(Object.keys(secret).sort(), ['created_at', 'id', 'name', 'team_name']);
    assert.equal(secret.name, 'hf_access_token');

    const pushed = await push();
    assert.equal(pushed.code, 0, JSON.stringify(pushed.deployment));
    deployment = pushed.deployment;
    assert.equal(deployment.status, 'ACTIVE');
    const answer = await stack.predict(`/models/${deployment.model_id}/deployment/${deployment.id}/predict`, {});
    received.push(JSON.stringify(answer.body));
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { length: value.length, sha256: sha256(value) });
  });

  it('rotates under the same id; replicas started after the rotation get the new value', async () => {
    const before = (await api('GET', '/v1/secrets')).body.secrets;
    const set = await cli(['secrets', 'set', 'hf_access_token', '--output', 'json'], rotated);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(JSON.parse(set.stdout).id, before[0].id);
    const route = `/models/${deployment.model_id}/deployment/${deployment.id}/predict`;
    // The running replica keeps the value it started with...
    assert.equal((await stack.predict(route, {})).body.sha256, sha256(value));
    // ...and one started after the rotation gets the new one.
    for (const action of ['deactivate', 'activate']) {
      const result = await cli(['deployments', action, deployment.model_id, deployment.id, '--wait']);
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    }
    const answer = await stack.predict(route, {});
    received.push(JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { length: rotated.length, sha256: sha256(rotated) });
  });

  it('lists names, ids and dates only, and audits set/rotate/delete by name', async () => {
    const listed = await api('GET', '/v1/secrets');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.secrets.map((s: Record<string, unknown>) => [s.name, s.team_name, Object.keys(s).sort()]),
      [['hf_access_token', 'default', ['created_at', 'id', 'name', 'team_name']]],
    );
    const table = await cli(['secrets', 'list']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^NAME\s+ID\s+CREATED\n/);
    assert.match(table.stdout, new RegExp(`hf_access_token\\s+${listed.body.secrets[0].id}`));

    const deleted = await cli(['secrets', 'delete', 'hf_access_token']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual((await api('GET', '/v1/secrets')).body, { secrets: [] });
    const again = await api('DELETE', '/v1/secrets/hf_access_token');
    assert.equal(again.status, 404);

    const audit = (await api('GET', '/v1/audit_logs')).body.audit_logs;
    assert.deepEqual(
      audit.map((entry: { action: string; target: string; details: unknown; source: string }) => [entry.action, entry.target, entry.details, entry.source]),
      [
        ['DELETE_SECRET', 'hf_access_token', { name: 'hf_access_token' }, 'cli'],
        ['SET_SECRET', 'hf_access_token', { name: 'hf_access_token', change: 'rotated' }, 'cli'],
        ['SET_SECRET', 'hf_access_token', { name: 'hf_access_token', change: 'created' }, 'cli'],
      ],
    );
  });

  it('the values appear in no file, log, API answer, audit entry or workflow history', async () => {
    const needles = [value, rotated, Buffer.from(value).toString('base64'), Buffer.from(rotated).toString('base64')];
    const hits: string[] = [];
    const search = (where: string, text: string): void => {
      for (const needle of needles) if (text.includes(needle)) hits.push(`${where} (${needle === value || needle === rotated ? 'plain' : 'base64'})`);
    };

    // Every API view a client can read.
    const models = await api('GET', '/v1/models');
    for (const model of models.body.models as { id: string }[]) {
      await api('GET', `/v1/models/${model.id}`);
      const deployments = await api('GET', `/v1/models/${model.id}/deployments`);
      for (const d of deployments.body.deployments as { id: string }[]) {
        await api('GET', `/v1/models/${model.id}/deployments/${d.id}`);
        await api('GET', `/v1/models/${model.id}/deployments/${d.id}/logs?tail=100000`);
      }
      await api('GET', `/v1/models/${model.id}/audit_logs`);
      await api('GET', `/v1/models/${model.id}/environments`);
    }
    await api('GET', '/v1/secrets');
    await api('GET', '/v1/audit_logs');
    const events = new AbortController();
    const stream = await fetch(`${stack.apiUrl}/v1/events`, { headers: { authorization: `Api-Key ${stack.apiKey}` }, signal: events.signal });
    const reader = stream.body!.getReader();
    const first = await reader.read();
    received.push(Buffer.from(first.value ?? new Uint8Array()).toString('utf8'));
    events.abort();
    assert.ok(
      received.some((text) => text.includes('fixture-needs-secret')),
      'the API answers were collected',
    );
    for (const [i, text] of received.entries()) search(`API/CLI answer ${i}`, text);

    // Everything the stack printed.
    assert.ok(stack.log.includes('Gantry is up.'));
    search('the stack output', stack.log);

    // Every file under GANTRY_HOME (the SQLite files included: there the value is only ciphertext).
    let files = 0;
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (entry.isFile()) {
          files++;
          search(file, fs.readFileSync(file).toString('latin1'));
        }
      }
    };
    walk(stack.home);
    assert.ok(fs.existsSync(path.join(stack.home, 'gantry.db')));
    assert.ok(fs.readdirSync(path.join(stack.home, 'logs')).length > 0);
    assert.ok(files > 10, `${files} files searched`);

    // Every workflow history in the namespace, payloads decoded.
    const client = await stack.temporalClient();
    let histories = 0;
    try {
      for await (const workflow of client.workflow.list()) {
        const history = await client.workflow.getHandle(workflow.workflowId, workflow.runId).fetchHistory();
        histories++;
        const texts: string[] = [];
        const collect = (node: unknown): void => {
          if (node instanceof Uint8Array) texts.push(Buffer.from(node).toString('utf8'));
          else if (typeof node === 'string') texts.push(node);
          else if (Array.isArray(node)) node.forEach(collect);
          else if (node && typeof node === 'object') Object.values(node).forEach(collect);
        };
        collect(history);
        const text = texts.join('\n');
        assert.ok(text.length > 0);
        search(`workflow ${workflow.workflowId}`, text);
      }
    } finally {
      await client.connection.close();
    }
    assert.ok(histories >= 2, `${histories} workflow histories searched`); // the two deploys
    assert.deepEqual(hits, []);
  });
});
