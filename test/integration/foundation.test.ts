/**
 * The foundation end to end: the real stack (supervisor, Temporal dev server, API, node,
 * worker), real replica processes and real HTTP. Pushes go through the gantry CLI.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';
import { LOG_LINE_KEYS } from '../../src/logging/logger';

const example = (name: string): string => path.join(PROJECT_ROOT, 'examples', name);
const fixture = (name: string): string => path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);

interface PushedDeployment {
  id: string;
  model_id: string;
  name: string;
  status: string;
  status_message: string | null;
  labels: Record<string, string>;
}

describe('foundation: push, serve, fail, recover, restart (real stack)', function () {
  this.timeout(300_000);
  let stack: TestStack;
  let echo: PushedDeployment;

  async function push(dir: string, ...flags: string[]): Promise<{ code: number; deployment: PushedDeployment; stderr: string }> {
    const result = await stack.cli(['push', dir, '--wait', '--output', 'json', ...flags]);
    assert.ok(result.stdout.trim().startsWith('{'), `push printed no JSON: ${result.stdout}\n${result.stderr}`);
    return { code: result.code, deployment: JSON.parse(result.stdout) as PushedDeployment, stderr: result.stderr };
  }

  async function logText(deployment: PushedDeployment): Promise<string> {
    const logs = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}/logs?tail=500`);
    assert.equal(logs.status, 200);
    return (logs.body.entries as { message: string }[]).map((entry) => entry.message).join('\n');
  }

  before(async () => {
    stack = await TestStack.create({ GANTRY_DEPLOY_TIMEOUT_SECONDS: '8' });
    await stack.start();
  });

  after(async () => {
    await stack?.destroy();
  });

  it('pushes examples/echo with the CLI and reaches ACTIVE as production', async () => {
    const { code, deployment } = await push(example('echo'), '--labels', '{"team":"ml"}');
    assert.equal(code, 0);
    assert.equal(deployment.status, 'ACTIVE');
    assert.equal(deployment.name, 'deployment-1');
    assert.deepEqual(deployment.labels, { team: 'ml' });
    assert.match(deployment.id, /^[a-z0-9]{8}$/);
    echo = deployment;
    const model = await stack.api('GET', `/v1/models/echo`);
    assert.equal(model.body.production_deployment_id, deployment.id);
  });

  it('serves predictions through gantry predict and the production, deployment and Host paths', async () => {
    const cli = await stack.cli(['predict', 'echo', '--data', '{"text":"hi"}']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.deepEqual(JSON.parse(cli.stdout), { echo: { text: 'hi' }, greeting: 'hello' });

    const production = await stack.predict(`/models/${echo.model_id}/production/predict`, { n: 1 });
    assert.equal(production.status, 200);
    assert.equal(production.deploymentId, echo.id);
    assert.deepEqual(production.body, { echo: { n: 1 }, greeting: 'hello' });

    const byDeployment = await stack.predict(`/models/${echo.model_id}/deployment/${echo.id}/predict`, { n: 2 });
    assert.equal(byDeployment.status, 200);
    assert.deepEqual(byDeployment.body.echo, { n: 2 });

    const byHost = await new Promise<{ status: number; body: string; deployment: string | undefined }>((resolve, reject) => {
      const request = http.request(
        `${stack.gatewayUrl}/production/predict`,
        { method: 'POST', headers: { host: `model-${echo.model_id}.localhost`, authorization: `Api-Key ${stack.apiKey}`, 'content-type': 'application/json' } },
        (response) => {
          let body = '';
          response.on('data', (chunk) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body, deployment: response.headers['x-gantry-deployment-id'] as string }));
        },
      );
      request.once('error', reject);
      request.end('{"n":3}');
    });
    assert.equal(byHost.status, 200);
    assert.equal(byHost.deployment, echo.id);
    assert.deepEqual(JSON.parse(byHost.body).echo, { n: 3 });
  });

  it('shows the completed deploy workflow in Temporal', async () => {
    const client = await stack.temporalClient();
    try {
      const description = await client.workflow.getHandle(`deploy:${echo.id}`).describe();
      assert.equal(description.status.name, 'COMPLETED');
      assert.equal(description.type, 'deployWorkflow');
      const result = await client.workflow.getHandle(`deploy:${echo.id}`).result();
      assert.equal(result.status, 'ACTIVE');
      assert.equal(result.became_production, true);
    } finally {
      await client.connection.close();
    }
  });

  it('answers 401 without a key and JSON 404s for unknown models, deployments and environments', async () => {
    const noKey = await fetch(`${stack.gatewayUrl}/models/${echo.model_id}/production/predict`, { method: 'POST', body: '{}' });
    assert.equal(noKey.status, 401);
    assert.equal(((await noKey.json()) as any).error.code, 'unauthorized');
    assert.equal((await fetch(`${stack.apiUrl}/v1/models`)).status, 401);
    assert.equal((await fetch(`${stack.apiUrl}/healthz`)).status, 200);

    for (const route of ['/models/nosuchmd/production/predict', `/models/${echo.model_id}/deployment/nosuchdp/predict`, `/models/${echo.model_id}/environments/staging/predict`]) {
      const answer = await stack.predict(route, {});
      assert.equal(answer.status, 404, route);
      assert.equal(answer.body.error.code, 'not_found');
    }
    assert.equal((await stack.api('GET', '/v1/models/nosuch')).status, 404);
  });

  it('names the deployment and refuses a taken name with 409', async () => {
    const named = await push(example('echo'), '--deployment-name', 'v2');
    assert.equal(named.code, 0);
    assert.equal(named.deployment.name, 'v2');
    const again = await stack.cli(['push', example('echo'), '--deployment-name', 'v2']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /409 conflict: .*v2/);
    const byName = await stack.api('GET', `/v1/models/echo/deployments/v2`);
    assert.equal(byName.body.id, named.deployment.id);
    const production = await stack.api('GET', `/v1/models/echo/deployments/production`);
    assert.equal(production.body.id, echo.id, 'a later push does not replace production');
  });

  const failures: [string, string, RegExp][] = [
    ['bad-config', 'BUILD_FAILED', /config\.yaml is invalid: requirements: .*runtime\.predict_concurrency/],
    ['missing-model-file', 'BUILD_FAILED', /model file model\/model\.py not found/],
    ['bad-requirement', 'BUILD_FAILED', /requirement did not install: .*gantry-no-such-package-zz9/],
    ['syntax-error', 'BUILD_FAILED', /SyntaxError in model\/model\.py line 2/],
    ['import-error', 'BUILD_FAILED', /No module named 'gantry_no_such_module_zz9'/],
    ['load-raises', 'DEPLOY_FAILED', /load\(\) raised: RuntimeError: weights file is corrupt/],
    ['never-healthy', 'DEPLOY_FAILED', /0 of 1 replicas became healthy before the deploy timeout/],
  ];
  for (const [name, status, cause] of failures) {
    it(`ends ${name} in ${status} with the cause in its status and log, while echo keeps serving`, async () => {
      const { code, deployment } = await push(fixture(name));
      assert.equal(code, 1);
      assert.equal(deployment.status, status);
      assert.match(deployment.status_message ?? '', cause);
      assert.match(await logText(deployment), cause);
      const replicas = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}`);
      assert.equal(replicas.body.replicas.desired, 0, 'a failed deployment keeps no replicas');
      const stillServing = await stack.predict(`/models/${echo.model_id}/production/predict`, { alive: true });
      assert.equal(stillServing.status, 200);
    });
  }

  it('restarts a replica killed with SIGKILL and serves again', async () => {
    const before = await stack.api('GET', `/v1/models/${echo.model_id}/deployments/${echo.id}`);
    assert.equal(before.body.replicas.ready, 1);
    const replicas = await import('../../src/store/sqlite/sqlite-store').then((m) => m.openSqliteStore(path.join(stack.home, 'gantry.db')));
    try {
      const [replica] = await replicas.listReplicas(echo.id);
      assert.ok(replica?.pid, 'the replica has a pid');
      process.kill(replica.pid, 'SIGKILL');
      await eventually(
        'the killed replica to be seen gone',
        async () => {
          const [now] = await replicas.listReplicas(echo.id);
          return now && now.restarts >= 1 ? now : undefined;
        },
        10_000,
      );
      const restarted = await eventually(
        'a new ready replica',
        async () => {
          const [now] = await replicas.listReplicas(echo.id);
          return now?.state === 'READY' && now.pid !== replica.pid ? now : undefined;
        },
        20_000,
      );
      assert.equal(restarted.last_exit, 'signal SIGKILL');
    } finally {
      await replicas.close();
    }
    const answer = await stack.predict(`/models/${echo.model_id}/production/predict`, { back: true });
    assert.equal(answer.status, 200);
  });

  it('runs min_replica replicas after PATCH autoscaling_settings and refuses bad settings', async () => {
    const route = `/v1/models/${echo.model_id}/deployments/${echo.id}/autoscaling_settings`;
    const bad = await stack.api('PATCH', route, { min_replica: 3, max_replica: 2 });
    assert.equal(bad.status, 422);
    assert.equal((await stack.api('PATCH', route, { min_replica: 'two' })).status, 422);
    assert.equal((await stack.api('PATCH', route, { min_replica: 1, surprise: true })).status, 422);
    const unchanged = await stack.api('GET', `/v1/models/${echo.model_id}/deployments/${echo.id}`);
    assert.equal(unchanged.body.autoscaling_settings.min_replica, 1);
    assert.equal(unchanged.body.autoscaling_settings.max_replica, 1);

    const ok = await stack.api('PATCH', route, { min_replica: 2, max_replica: 3 });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.autoscaling_settings.min_replica, 2);
    assert.equal(ok.body.autoscaling_settings.max_replica, 3);
    await eventually('two ready replicas', async () => {
      const now = await stack.api('GET', `/v1/models/${echo.model_id}/deployments/${echo.id}`);
      return now.body.replicas.ready === 2 ? true : undefined;
    });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => stack.predict(`/models/${echo.model_id}/production/predict`, { i })));
    assert.ok(answers.every((answer) => answer.status === 200));
    await stack.api('PATCH', route, { min_replica: 1, max_replica: 1 });
    await eventually('back to one replica', async () => {
      const now = await stack.api('GET', `/v1/models/${echo.model_id}/deployments/${echo.id}`);
      return now.body.replicas.ready === 1 && now.body.replicas.desired === 1 ? true : undefined;
    });
  });

  it('builds a real model with a PyPI requirement once and reuses its environment on the next push', async () => {
    const first = await push(example('iris-classifier'));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.deployment.status, 'ACTIVE');
    const answer = await stack.predict(`/models/${first.deployment.model_id}/production/predict`, {
      instances: [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
      ],
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(
      answer.body.predictions.map((p: { species: string }) => p.species),
      ['setosa', 'virginica'],
    );
    assert.match(await logText(first.deployment), /installing \d+ requirement\(s\): .*scikit-learn==/);

    const second = await push(example('iris-classifier'));
    assert.equal(second.deployment.status, 'ACTIVE');
    const secondLog = await logText(second.deployment);
    assert.match(secondLog, /requirements unchanged, nothing to install/);
    assert.doesNotMatch(secondLog, /installing \d+ requirement/);
  });

  it('keeps every deployment and serves without a new push after the stack is stopped and started again', async () => {
    await stack.stop();
    assert.ok(stack.logged(/^node stopped \(exit code 0\)/, 'gantry'));
    // Everything every process printed, the failing fixtures' builds and replicas included, is a JSON log line.
    for (const line of stack.logLines()) for (const key of LOG_LINE_KEYS) assert.equal(typeof line[key], 'string', `${key} in ${JSON.stringify(line)}`);
    await stack.start();
    const deployment = await stack.api('GET', `/v1/models/${echo.model_id}/deployments/${echo.id}`);
    assert.equal(deployment.body.status, 'ACTIVE');
    const answer = await eventually('production to serve again', async () => {
      const now = await stack.predict(`/models/${echo.model_id}/production/predict`, { restarted: true });
      return now.status === 200 ? now : undefined;
    });
    assert.deepEqual(answer.body.echo, { restarted: true });
    assert.equal(answer.deploymentId, echo.id);
  });
});
