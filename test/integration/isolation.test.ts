/**
 * Model code fenced off, on the real stack (sandboxed, as Gantry runs as root here): a model's
 * load() and predict cannot read the store, the key files or another model's code, nor write
 * into its own package; each model runs as its own unprivileged uid; pip's build backends see
 * none of Gantry's variables and run as a uid of the build's own, of which nothing outlives it; a requirement line that is a pip option is refused before pip runs.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const FIXTURES = path.join(PROJECT_ROOT, 'test', 'fixtures');

interface Deployment {
  id: string;
  model_id: string;
  status: string;
  status_message: string | null;
}

interface Probe {
  uid: number;
  gid: number;
  groups: number[];
  load_reads: Record<string, string>;
  package_write: string;
  reads: Record<string, string>;
  home: string;
  gantry_variables: string[];
}

/** What reading a file Gantry keeps from models may give: it is not there, or not readable. */
const DENIED = /^(PermissionError|FileNotFoundError) /;

describe('model isolation (real stack, sandboxed)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-isolation-'));
  // The worker and the node run with these: none may reach model code or pip.
  const apiKey = 'isolation-test-admin-key-0123456789';

  /** A copy of the probes-isolation fixture named `name`, with these environment variables and requirements. */
  function probeModel(name: string, variables: Record<string, string>, requirements: string[] = []): string {
    const dir = path.join(scratch, name);
    fs.cpSync(path.join(FIXTURES, 'models', 'probes-isolation'), dir, { recursive: true });
    const config = [`model_name: ${name}`, `requirements: ${JSON.stringify(requirements)}`, `environment_variables: ${JSON.stringify({ PROBE_READ: '', ...variables })}`].join(
      '\n',
    );
    fs.writeFileSync(path.join(dir, 'config.yaml'), `${config}\n`);
    return dir;
  }

  async function push(dir: string): Promise<{ code: number; deployment: Deployment }> {
    const result = await stack.cli(['push', dir, '--wait', '--output', 'json']);
    assert.ok(result.stdout.trim().startsWith('{'), `push printed no JSON: ${result.stdout}\n${result.stderr}`);
    return { code: result.code, deployment: JSON.parse(result.stdout) as Deployment };
  }

  async function logText(deployment: Deployment): Promise<string> {
    const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=1000`);
    assert.equal(logs.status, 200);
    return (logs.body.entries as { message: string }[]).map((entry) => entry.message).join('\n');
  }

  async function probe(deployment: Deployment, read: string[] = []): Promise<Probe> {
    const answer = await stack.predict(`/models/${deployment.model_id}/production/predict`, { read });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as Probe;
  }

  before(async () => {
    stack = await TestStack.create({ GANTRY_WEBHOOK_SECRET: 'isolation-test-webhook-secret-0123' });
    // The admin key both in the environment (as GANTRY_API_KEY) and in its file.
    stack.env.GANTRY_API_KEY = apiKey;
    fs.writeFileSync(path.join(stack.home, 'admin-api-key'), `${apiKey}\n`, { mode: 0o600 });
    await stack.start();
    // Creates the secrets key file.
    const secret = await stack.api('POST', '/v1/secrets', { name: 'isolation_probe', value: 'not for models' });
    assert.equal(secret.status, 200, JSON.stringify(secret.body));
  });

  after(async () => {
    await stack?.destroy();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('says at start that the node and the worker sandbox model code', async () => {
    // "Gantry is up" waits for the API and the gateway; the worker may still be starting (a push
    // made meanwhile waits in Temporal's queue), so its line is waited for.
    await eventually('the node and the worker to say how they isolate model code', async () =>
      stack.logged(/^node: model isolation: sandbox/, 'node') && stack.logged(/^worker: model isolation: sandbox/, 'worker') ? true : undefined,
    );
  });

  it("keeps the store, the key files and another model's code from a model's load() and predict, and its own package read-only", async () => {
    const other = await push(probeModel('isolation-other', {}));
    assert.equal(other.deployment.status, 'ACTIVE', other.deployment.status_message ?? '');
    const otherCode = path.join(stack.home, 'builds', other.deployment.id, 'model', 'model.py');
    const secrets = [path.join(stack.home, 'gantry.db'), path.join(stack.home, 'admin-api-key'), path.join(stack.home, 'secrets.key'), otherCode];
    for (const file of secrets) assert.ok(fs.existsSync(file), `${file} exists (so the model was denied, not missing it)`);

    const prober = await push(probeModel('isolation-prober', { PROBE_READ: secrets.join(path.delimiter) }));
    assert.equal(prober.deployment.status, 'ACTIVE', prober.deployment.status_message ?? '');
    const seen = await probe(prober.deployment, secrets);

    for (const file of secrets) {
      assert.match(seen.load_reads[file] ?? 'not tried', DENIED, `load() reading ${file}`);
      assert.match(seen.reads[file] ?? 'not tried', DENIED, `predict reading ${file}`);
    }
    assert.match(seen.package_write, /^OSError Read-only file system$/, 'writing into its own package');
    const ownCode = path.join(stack.home, 'builds', prober.deployment.id, 'model');
    assert.equal(fs.existsSync(path.join(ownCode, 'planted.py')), false);

    const otherSeen = await probe(other.deployment);
    assert.notEqual(seen.uid, 0);
    assert.notEqual(otherSeen.uid, 0);
    assert.notEqual(seen.uid, otherSeen.uid, 'each model has a uid of its own');
    assert.equal(seen.gid, seen.uid);
    assert.deepEqual(seen.groups, []);
    assert.deepEqual(seen.gantry_variables, [], 'no GANTRY_API_KEY or TEMPORAL_* in the replica');
    assert.equal(seen.home, path.join(stack.home, 'sandbox', String(seen.uid)));
    // The same model, pushed again, keeps its uid.
    const again = await push(probeModel('isolation-prober', { PROBE_READ: secrets.join(path.delimiter) }));
    assert.equal((await probe(again.deployment)).uid, seen.uid);
  });

  it("runs pip's build backends without any GANTRY_* or TEMPORAL_* variable, as the build's own uid, of which nothing is left after", async () => {
    // A copy other users can read: the sandbox sees the machine's files with their permissions.
    const requirement = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-reports-environment-'));
    try {
      fs.cpSync(path.join(FIXTURES, 'packages', 'reports-environment'), requirement, { recursive: true });
      fs.chmodSync(requirement, 0o755);
      for (const file of fs.readdirSync(requirement)) fs.chmodSync(path.join(requirement, file), 0o644);
      const { code, deployment } = await push(probeModel('isolation-pip', {}, [requirement]));
      assert.equal(code, 1);
      assert.equal(deployment.status, 'BUILD_FAILED');
      const log = await logText(deployment);
      const reported = /ENVIRONMENT NAMES: (.*)/.exec(log);
      assert.ok(reported, `the build backend ran and reported its environment:\n${log}`);
      const names = reported[1]!.trim().split(' ');
      assert.ok(names.includes('PATH'), names.join(' '));
      assert.deepEqual(
        names.filter((name) => name.startsWith('GANTRY_') || name.startsWith('TEMPORAL_')),
        [],
      );
      const uid = Number(/RUNS AS UID: (\d+)/.exec(log)?.[1]);
      assert.ok(uid > 0, `pip ran as uid ${uid}`);
      assert.equal(fs.existsSync(path.join(stack.home, 'sandbox', String(uid))), false, "the build uid's scratch directory is removed");
      const left = fs.readdirSync('/proc').filter((entry) => {
        try {
          return /^\d+$/.test(entry) && new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(fs.readFileSync(`/proc/${entry}/status`, 'utf8'));
        } catch {
          return false;
        }
      });
      assert.deepEqual(left, [], 'no process of the build uid is left');
    } finally {
      fs.rmSync(requirement, { recursive: true, force: true });
    }
  });

  it('refuses a requirement line that is a pip option with BUILD_FAILED, before pip runs', async () => {
    const keyFile = path.join(stack.home, 'admin-api-key');
    const { code, deployment } = await push(probeModel('isolation-pip-option', {}, [`-r ${keyFile}`]));
    assert.equal(code, 1);
    assert.equal(deployment.status, 'BUILD_FAILED');
    assert.match(deployment.status_message ?? '', /requirement "-r .*admin-api-key" uses the pip option --requirement, which this server does not allow/);
    const log = await logText(deployment);
    assert.doesNotMatch(log, /installing \d+ requirement|creating Python environment/);
    assert.ok(!log.includes(apiKey), 'the key is in no log line');
  });
});
