/**
 * Wake and the async routes through the gateway, on the real stack: `POST …/wake` and
 * `gantry wake` bring a sleeping deployment back without any predict; refusals are JSON and
 * change nothing; the async inference routes reach the API through the gateway, and answer 503
 * JSON while the API is down.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';
import { send } from '../unit/support/http';

interface Deployment {
  id: string;
  model_id: string;
  name: string;
  status: string;
  replicas: { desired: number; ready: number };
}

describe('wake and the async routes through the gateway (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let sleepy: Deployment;

  async function get(model: string, ref: string): Promise<Deployment> {
    const answer = await stack.api('GET', `/v1/models/${model}/deployments/${ref}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  }

  /** Sends a request to the gateway and reads its JSON answer. */
  async function gateway(method: string, route: string, headers: Record<string, string> = { authorization: `Api-Key ${stack.apiKey}` }, body?: unknown) {
    const response = await fetch(`${stack.gatewayUrl}${route}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/, `${method} ${route}`);
    return { status: response.status, body: (await response.json()) as any };
  }

  /** Lets the deployment sleep (scale_down_delay 0), then keeps it awake 10 minutes once woken. */
  async function putToSleep(deployment: Deployment): Promise<void> {
    const route = `/v1/models/${deployment.model_id}/deployments/${deployment.id}/autoscaling_settings`;
    assert.equal((await stack.api('PATCH', route, { min_replica: 0, scale_down_delay: 0, autoscaling_window: 10 })).status, 200);
    await eventually(
      'scaled to zero',
      async () => {
        const now = await get(deployment.model_id, deployment.id);
        return now.status === 'SCALED_TO_ZERO' && now.replicas.desired === 0 && now.replicas.ready === 0 ? true : undefined;
      },
      60_000,
    );
    assert.equal((await stack.api('PATCH', route, { scale_down_delay: 600 })).status, 200);
    const still = await get(deployment.model_id, deployment.id);
    assert.equal(still.status, 'SCALED_TO_ZERO', 'changing the settings does not wake it');
  }

  async function awake(deployment: Deployment): Promise<void> {
    await eventually(
      'ACTIVE with a ready replica',
      async () => {
        const now = await get(deployment.model_id, deployment.id);
        return now.status === 'ACTIVE' && now.replicas.ready === 1 ? true : undefined;
      },
      60_000,
    );
  }

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    const pushed = await stack.cli(['push', path.join(PROJECT_ROOT, 'examples', 'echo'), '--model-name', 'sleepy', '--wait', '--output', 'json']);
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    sleepy = JSON.parse(pushed.stdout);
  });

  after(async () => {
    await stack?.destroy();
  });

  it('POST …/production/wake answers 202 at once and the sleeping deployment comes back without any predict', async () => {
    await putToSleep(sleepy);
    const answer = await gateway('POST', `/models/${sleepy.model_id}/production/wake`);
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { model_id: sleepy.model_id, deployments: [{ id: sleepy.id, name: sleepy.name, woken: true }] });
    const right = await get(sleepy.model_id, sleepy.id);
    assert.ok(['WAKING_UP', 'ACTIVE'].includes(right.status), right.status);
    assert.equal(right.replicas.desired, 1);
    await awake(sleepy);
    assert.ok(stack.logged(new RegExp(`^waking deployment ${sleepy.id}: asked by POST …/wake`), 'node'));

    // Awake already: 202 again and nothing changes.
    const again = await gateway('POST', `/models/${sleepy.model_id}/deployment/${sleepy.id}/wake`);
    assert.equal(again.status, 202);
    assert.deepEqual(again.body.deployments, [{ id: sleepy.id, name: sleepy.name, woken: false }]);
    const after = await get(sleepy.model_id, sleepy.id);
    assert.deepEqual([after.status, after.replicas.desired], ['ACTIVE', 1]);
  });

  it('gantry wake does the same', async () => {
    await putToSleep(sleepy);
    const result = await stack.cli(['wake', 'sleepy']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.stdout, `deployment ${sleepy.name} (${sleepy.id}) is waking up\n`);
    await awake(sleepy);
    const again = await stack.cli(['wake', 'sleepy', '--deployment', sleepy.name]);
    assert.equal(again.stdout, `deployment ${sleepy.name} (${sleepy.id}) is already awake or waking up\n`);
    const unknown = await stack.cli(['wake', 'sleepy', '--environment', 'nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error: 404 not_found: environment nope not found for model/);
  });

  it('refuses unknown models, other methods, missing keys and deactivated deployments in JSON, and changes nothing', async () => {
    const second = await stack.cli(['push', path.join(PROJECT_ROOT, 'examples', 'echo'), '--model-name', 'sleepy', '--wait', '--output', 'json']);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    const inactive: Deployment = JSON.parse(second.stdout);
    const deactivated = await stack.cli(['deployments', 'deactivate', 'sleepy', inactive.id, '--wait']);
    assert.equal(deactivated.code, 0, deactivated.stdout + deactivated.stderr);
    const before = await Promise.all([get(sleepy.model_id, sleepy.id), get(sleepy.model_id, inactive.id)]);
    assert.equal(before[1].status, 'INACTIVE');

    const refused: [string, string, Record<string, string> | undefined, number, string][] = [
      ['POST', `/models/nosuchmodel/production/wake`, undefined, 404, 'not_found'],
      ['POST', `/models/${sleepy.model_id}/deployment/nosuchdeployment/wake`, undefined, 404, 'not_found'],
      ['GET', `/models/${sleepy.model_id}/production/wake`, undefined, 405, 'method_not_allowed'],
      ['POST', `/models/${sleepy.model_id}/production/wake`, {}, 401, 'unauthorized'],
      ['POST', `/models/${sleepy.model_id}/production/wake`, { authorization: 'Api-Key not-a-key-0123456789' }, 401, 'unauthorized'],
      ['POST', `/models/${sleepy.model_id}/deployment/${inactive.id}/wake`, undefined, 404, 'deployment_inactive'],
    ];
    for (const [method, route, headers, status, code] of refused) {
      const answer = await gateway(method, route, headers);
      assert.equal(answer.status, status, `${method} ${route}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, code, route);
    }
    const after = await Promise.all([get(sleepy.model_id, sleepy.id), get(sleepy.model_id, inactive.id)]);
    assert.deepEqual(
      after.map((d) => [d.status, d.replicas.desired]),
      before.map((d) => [d.status, d.replicas.desired]),
    );
  });

  it('passes the async routes on to the API, and answers 503 JSON while the API is down', async () => {
    const route = `/models/${sleepy.model_id}/async_request/nosuchrequest`;
    const direct = await stack.api('GET', route);
    const through = await gateway('GET', route);
    assert.equal(through.status, direct.status);
    assert.deepEqual(through.body, direct.body, 'the gateway answers what the API answers');
    assert.equal(through.status, 404);
    // The Host-based form is the same request.
    const byHost = await send(`${stack.gatewayUrl}/async_request/nosuchrequest`, {
      method: 'GET',
      headers: { authorization: `Api-Key ${stack.apiKey}`, host: `model-${sleepy.model_id}.localhost` },
    });
    assert.deepEqual(JSON.parse(byHost.body), direct.body);

    const api = stack.childPid('api');
    process.kill(api, 'SIGKILL');
    await eventually('the API to be seen dead', async () => (stack.logged(/^api died \(signal SIGKILL\); restarting/, 'gantry') ? true : undefined), 10_000, 20);
    const down = await gateway('POST', `/models/${sleepy.model_id}/production/async_predict`, { authorization: `Api-Key ${stack.apiKey}` }, { model_input: {} });
    assert.equal(down.status, 503, JSON.stringify(down.body));
    assert.equal(down.body.error.code, 'unavailable');
    assert.match(down.body.error.message, /^the API is not reachable at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    await eventually('the API back', async () => ((await gateway('GET', route)).status === direct.status ? true : undefined), 60_000, 200);
  });
});
