/**
 * Environments and rolling promotions end to end: the real stack, real replicas, real HTTP,
 * steady load from bench/loadgen.ts throughout. Every promotion must lose zero requests.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { LoadGenerator, type LoadSummary } from '../../bench/loadgen';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { TEMPORAL_CLI } from '../../src/stack/temporal-dev-server';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const run = promisify(execFile);
const example = (name: string): string => path.join(PROJECT_ROOT, 'examples', name);
const fixture = (name: string): string => path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);

interface Promotion {
  id: string;
  status: string;
  percent_traffic_to_new_version: number;
  candidate_deployment_id: string;
  previous_deployment_id: string | null;
  message: string | null;
}

describe('environments and rolling promotions (real stack, under load)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let modelId: string;
  let current: string; // production's current deployment of the "rollout" model

  async function pushDeployment(dir: string, ...flags: string[]): Promise<{ id: string; model_id: string; name: string }> {
    const result = await stack.cli(['push', dir, '--wait', '--output', 'json', ...flags]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async function promotionOf(env = 'production', model = modelId): Promise<Promotion> {
    const answer = await stack.api('GET', `/v1/models/${model}/environments/${env}/promotion`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  }

  async function until(what: string, done: (p: Promotion) => boolean, env = 'production', model = modelId): Promise<Promotion> {
    return eventually(
      what,
      async () => {
        const p = await promotionOf(env, model);
        return done(p) ? p : undefined;
      },
      120_000,
      50,
    );
  }

  async function deployment(id: string, model = modelId): Promise<{ status: string; replicas: { desired: number; ready: number } }> {
    return (await stack.api('GET', `/v1/models/${model}/deployments/${id}`)).body;
  }

  function load(env = 'production', model = modelId): LoadGenerator {
    const route = env === 'production' ? `/models/${model}/production/predict` : `/models/${model}/environments/${env}/predict`;
    const generator = new LoadGenerator({ url: `${stack.gatewayUrl}${route}`, apiKey: stack.apiKey, rate: 40 });
    generator.start();
    return generator;
  }

  function assertNoFailures(generator: LoadGenerator, summary: LoadSummary): void {
    assert.ok(summary.answered > 50, `load was sent (${summary.answered} answers)`);
    assert.deepEqual(generator.failures().slice(0, 5), [], `failed requests: ${JSON.stringify(summary.byStatus)}`);
    assert.equal(summary.failed, 0);
  }

  /** Deployments that answered in a time window of the load. */
  function servedBy(generator: LoadGenerator, fromMs: number, toMs: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const s of generator.samples) if (s.at >= fromMs && s.at < toMs && s.deploymentId) counts[s.deploymentId] = (counts[s.deploymentId] ?? 0) + 1;
    return counts;
  }

  async function promote(candidate: string, env = 'production', model = modelId): Promise<{ status: number; body: any }> {
    return stack.api('POST', `/v1/models/${model}/environments/${env}/promote`, { deployment_id: candidate });
  }

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    const first = await pushDeployment(example('echo'), '--model-name', 'rollout');
    modelId = first.model_id;
    current = first.id;
    const scaled = await stack.api('PATCH', `/v1/models/${modelId}/deployments/${current}/autoscaling_settings`, { min_replica: 2, max_replica: 2 });
    assert.equal(scaled.status, 200);
    await eventually('two ready replicas', async () => ((await deployment(current)).replicas.ready === 2 ? true : undefined));
    const settings = await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, {
      promotion_settings: { rolling_deploy_config: { max_surge_percent: 50, stabilization_time_seconds: 2 } },
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
  });

  after(async () => {
    await stack?.destroy();
  });

  it('refuses invalid promotion settings with 422 naming the field, and changes nothing', async () => {
    const both = await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, {
      promotion_settings: { rolling_deploy_config: { max_unavailable_percent: 25 } },
    });
    assert.equal(both.status, 422);
    assert.match(both.body.error.message, /promotion_settings\.rolling_deploy_config\.max_surge_percent: exactly one/);
    const range = await stack.api('POST', `/v1/models/${modelId}/environments`, { name: 'qa', promotion_settings: { rolling_deploy_config: { max_surge_percent: 80 } } });
    assert.equal(range.status, 422);
    assert.match(range.body.error.message, /max_surge_percent/);
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments`, { name: 'Bad_Name' })).status, 422);
    assert.equal((await stack.api('GET', `/v1/models/${modelId}/environments/qa`)).status, 404);
    const production = await stack.api('GET', `/v1/models/${modelId}/environments/production`);
    assert.equal(production.body.promotion_settings.rolling_deploy_config.max_surge_percent, 50);
    assert.equal((await stack.api('DELETE', `/v1/models/${modelId}/environments/production`)).status, 409);
  });

  it('rolls a 2-replica deployment forward step by step under load with zero failed requests', async () => {
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const generator = load();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = await promote(candidate.id);
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.status, 'RELEASING');
    const second = await promote(candidate.id);
    assert.equal(second.status, 409);
    assert.match(second.body.error.message, new RegExp(`already in flight: ${started.body.id}`));

    const seen: { at: number; percent: number; status: string }[] = [];
    const ended = await eventually(
      'the promotion to end',
      async () => {
        const p = await promotionOf();
        if (seen.at(-1)?.percent !== p.percent_traffic_to_new_version || seen.at(-1)?.status !== p.status) {
          seen.push({ at: generator.elapsed(), percent: p.percent_traffic_to_new_version, status: p.status });
        }
        return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(p.status) ? p : undefined;
      },
      120_000,
      50,
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const summary = await generator.stop();
    assert.equal(ended.status, 'SUCCEEDED', ended.message ?? '');
    assertNoFailures(generator, summary);

    const percents = seen.map((s) => s.percent);
    assert.deepEqual(
      [...percents].sort((a, b) => a - b),
      percents,
      `traffic share only rises: ${percents}`,
    );
    assert.ok(percents.includes(50) && percents.at(-1) === 100, `steps 50 then 100: ${percents}`);
    // While at 50%, both deployments answered; at the start only the previous, at the end only the candidate.
    const half = seen.find((s) => s.percent === 50)!;
    const full = seen.find((s) => s.percent === 100)!;
    const middle = servedBy(generator, half.at + 200, full.at);
    assert.ok((middle[candidate.id] ?? 0) > 5 && (middle[current] ?? 0) > 5, `split at 50%: ${JSON.stringify(middle)}`);
    assert.deepEqual(Object.keys(servedBy(generator, 0, 400)), [current]);
    assert.deepEqual(Object.keys(servedBy(generator, generator.elapsed() - 800, Infinity)), [candidate.id]);

    const environment = await stack.api('GET', `/v1/models/${modelId}/environments/production`);
    assert.equal(environment.body.current_deployment.id, candidate.id);
    assert.equal(environment.body.in_progress_promotion, null);
    await eventually('the previous deployment at zero replicas', async () => {
      const previous = await deployment(current);
      return previous.replicas.desired === 0 && previous.replicas.ready === 0 && previous.status === 'SCALED_TO_ZERO' ? true : undefined;
    });
    assert.equal((await deployment(candidate.id)).replicas.ready, 2);
    current = candidate.id;
  });

  it('pauses mid-rollout with the split held while paused, refuses a second promote, and resumes to the end', async () => {
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const other = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const generator = load();
    assert.equal((await promote(candidate.id)).status, 202);
    await until('step 1', (p) => p.percent_traffic_to_new_version === 50);
    const paused = await stack.api('POST', `/v1/models/${modelId}/environments/production/pause_promotion`);
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.status, 'PAUSED');
    assert.equal(paused.body.percent_traffic_to_new_version, 50);
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments/production/pause_promotion`)).status, 409);

    const from = generator.elapsed();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const to = generator.elapsed();
    const split = servedBy(generator, from, to);
    const total = (split[candidate.id] ?? 0) + (split[current] ?? 0);
    assert.ok(total > 100, `traffic while paused: ${JSON.stringify(split)}`);
    assert.ok(Math.abs((split[candidate.id] ?? 0) / total - 0.5) <= 0.05, `50/50 while paused: ${JSON.stringify(split)}`);
    assert.equal((await promotionOf()).status, 'PAUSED', 'still paused after 4 s');

    const clash = await promote(other.id);
    assert.equal(clash.status, 409);
    assert.match(clash.body.error.message, /already in flight/);

    const resumed = await stack.api('POST', `/v1/models/${modelId}/environments/production/resume_promotion`);
    assert.equal(resumed.status, 200);
    assert.notEqual(resumed.body.status, 'PAUSED');
    const ended = await until('the end', (p) => p.status === 'SUCCEEDED' || p.status === 'FAILED');
    assert.equal(ended.status, 'SUCCEEDED');
    assertNoFailures(generator, await generator.stop());
    current = candidate.id;
  });

  it('cancels mid-rollout: RAMPING_DOWN then CANCELED, all traffic back, candidate scaled down, zero failures', async () => {
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const generator = load();
    assert.equal((await promote(candidate.id)).status, 202);
    await until('step 1', (p) => p.percent_traffic_to_new_version === 50);
    const cancel = await stack.api('POST', `/v1/models/${modelId}/environments/production/cancel_promotion`);
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.ok(['RAMPING_DOWN', 'CANCELED'].includes(cancel.body.status), cancel.body.status);
    const ended = await until('CANCELED', (p) => p.status === 'CANCELED');
    assert.equal(ended.percent_traffic_to_new_version, 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = generator.elapsed();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assertNoFailures(generator, await generator.stop());
    assert.deepEqual(Object.keys(servedBy(generator, after, Infinity)), [current], 'all traffic on the previous deployment');
    const environment = await stack.api('GET', `/v1/models/${modelId}/environments/production`);
    assert.equal(environment.body.current_deployment.id, current, 'the current deployment is unchanged');
    await eventually('the candidate scaled down', async () => ((await deployment(candidate.id)).replicas.ready === 0 ? true : undefined));
    assert.equal((await deployment(current)).replicas.ready, 2);
  });

  it('force-cancels back to the previous deployment, then force-rolls a new promotion forward, with zero failures', async () => {
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const generator = load();
    assert.equal((await promote(candidate.id)).status, 202);
    await until('step 1', (p) => p.percent_traffic_to_new_version === 50);
    const forceCancel = await stack.api('POST', `/v1/models/${modelId}/environments/production/force_cancel_promotion`);
    assert.equal(forceCancel.status, 200, JSON.stringify(forceCancel.body));
    assert.equal(forceCancel.body.status, 'CANCELED');
    assert.equal((await stack.api('GET', `/v1/models/${modelId}/environments/production`)).body.current_deployment.id, current);

    assert.equal((await promote(candidate.id)).status, 202, 'a cancelled candidate (scaled to zero) can be promoted again');
    await until('step 1 again', (p) => p.percent_traffic_to_new_version === 50 && p.status !== 'CANCELED');
    const forward = await stack.api('POST', `/v1/models/${modelId}/environments/production/force_roll_forward_promotion`);
    assert.equal(forward.status, 200, JSON.stringify(forward.body));
    assert.equal(forward.body.status, 'SUCCEEDED');
    assert.equal(forward.body.percent_traffic_to_new_version, 100);
    assert.equal((await stack.api('GET', `/v1/models/${modelId}/environments/production`)).body.current_deployment.id, candidate.id);
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments/production/resume_promotion`)).status, 409, 'nothing in flight');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assertNoFailures(generator, await generator.stop());
    current = candidate.id;
  });

  it('survives the worker killed with SIGKILL mid-rollout: resumes where it was and succeeds with zero failures', async () => {
    await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, { promotion_settings: { rolling_deploy_config: { stabilization_time_seconds: 4 } } });
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    const generator = load();
    assert.equal((await promote(candidate.id)).status, 202);
    await until('step 1', (p) => p.percent_traffic_to_new_version === 50);
    const worker = stack.childPid('worker');
    process.kill(worker, 'SIGKILL');
    const ended = await until('the end after the worker restarted', (p) => p.status === 'SUCCEEDED' || p.status === 'FAILED');
    assert.equal(ended.status, 'SUCCEEDED', ended.message ?? '');
    assert.notEqual(stack.childPid('worker'), worker, 'the supervisor started a new worker');
    assert.ok(stack.logged(/^worker died \(signal SIGKILL\); restarting/, 'gantry'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assertNoFailures(generator, await generator.stop());
    assert.equal((await stack.api('GET', `/v1/models/${modelId}/environments/production`)).body.current_deployment.id, candidate.id);
    current = candidate.id;
    await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, { promotion_settings: { rolling_deploy_config: { stabilization_time_seconds: 2 } } });
  });

  it('acts on a pause sent with `temporal workflow signal` exactly as on the API pause, and audits it', async () => {
    const candidate = await pushDeployment(example('echo'), '--model-name', 'rollout');
    assert.equal((await promote(candidate.id)).status, 202);
    await until('step 1', (p) => p.percent_traffic_to_new_version === 50);
    await run(TEMPORAL_CLI, ['workflow', 'signal', '--address', stack.env.TEMPORAL_ADDRESS!, '--workflow-id', `promotion:${modelId}:production`, '--name', 'pausePromotion']);
    const paused = await until('PAUSED', (p) => p.status === 'PAUSED');
    assert.equal(paused.percent_traffic_to_new_version, 50);
    const audit = await stack.api('GET', `/v1/models/${modelId}/audit_logs`);
    const pause = audit.body.audit_logs.find((e: any) => e.action === 'PAUSE' && e.details.promotion_id === paused.id);
    assert.equal(pause?.actor, 'temporal (signal)');
    assert.equal(pause?.details.outcome, 'applied');
    const resumed = await stack.cli(['rollout', 'resume', 'rollout']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const followed = await stack.cli(['rollout', 'status', 'rollout', '--follow']);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /SUCCEEDED/);
    const entries = (await stack.api('GET', `/v1/models/${modelId}/audit_logs`)).body.audit_logs.filter((e: any) => e.details.promotion_id === paused.id);
    const actions = entries.map((e: any) => e.action).reverse();
    assert.deepEqual(
      actions.filter((a: string) => ['PROMOTE', 'PAUSE', 'RESUME', 'PROMOTION_SUCCEEDED'].includes(a)),
      ['PROMOTE', 'PAUSE', 'RESUME', 'PROMOTION_SUCCEEDED'],
    );
    assert.ok(entries.find((e: any) => e.action === 'RESUME')?.actor.startsWith('admin'), 'the API resume names the key');
    current = candidate.id;
  });

  it('fails a promotion whose candidate cannot load, and traffic never leaves the previous deployment', async () => {
    const first = await pushDeployment(fixture('needs-weights'));
    const second = await pushDeployment(fixture('needs-weights'));
    const model = first.model_id;
    const instant = await stack.cli(['promote', model, second.id, '--follow']);
    assert.equal(instant.code, 0, instant.stdout + instant.stderr);
    await eventually('the first deployment scaled to zero', async () => ((await deployment(first.id, model)).replicas.ready === 0 ? true : undefined));
    fs.rmSync(path.join(stack.home, 'builds', first.id, 'data', 'weights.json'));

    const generator = load('production', model);
    const promoted = await stack.cli(['promote', model, first.id, '--follow']);
    assert.equal(promoted.code, 1, 'a failed promotion exits non-zero');
    assert.match(promoted.stdout, /FAILED: .*load\(\) raised: FileNotFoundError/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const summary = await generator.stop();
    assertNoFailures(generator, summary);
    assert.deepEqual(Object.keys(summary.byDeployment), [second.id], 'every request was served by the previous deployment');
    const environment = await stack.api('GET', `/v1/models/${model}/environments/production`);
    assert.equal(environment.body.current_deployment.id, second.id);
    const history = await stack.api('GET', `/v1/models/${model}/environments/production/promotions`);
    assert.deepEqual(
      history.body.promotions.map((p: Promotion) => p.status),
      ['FAILED', 'SUCCEEDED'],
    );
  });

  it('creates a staging environment, promotes into it instantly, pushes with --environment, and deletes it', async () => {
    const created = await stack.cli(['environments', 'create', 'rollout', 'staging', '--max-surge-percent', '50', '--stabilization-seconds', '1']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments`, { name: 'staging' })).status, 409);
    assert.equal((await stack.predict(`/models/${modelId}/environments/staging/predict`, {})).status, 404, 'no deployment yet');
    const first = await promote(current, 'staging');
    assert.equal(first.status, 202);
    await until('staging switched', (p) => p.status === 'SUCCEEDED', 'staging');
    const served = await stack.predict(`/models/${modelId}/environments/staging/predict`, { env: 'staging' });
    assert.equal(served.status, 200);
    assert.equal(served.deploymentId, current);

    const pushed = await stack.cli(['push', example('echo'), '--model-name', 'rollout', '--environment', 'staging']);
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    assert.match(pushed.stdout, /promotion \w+ SUCCEEDED/);
    const staging = await stack.api('GET', `/v1/models/${modelId}/environments/staging`);
    assert.notEqual(staging.body.current_deployment.id, current);
    const listed = await stack.cli(['environments', 'rollout']);
    assert.match(listed.stdout, /staging +deployment-\d+/);

    const deleted = await stack.cli(['environments', 'delete', 'rollout', 'staging']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await stack.predict(`/models/${modelId}/environments/staging/predict`, {})).status, 404);
    const audit = (await stack.api('GET', `/v1/models/${modelId}/audit_logs`)).body.audit_logs.map((e: any) => e.action);
    assert.ok(audit.includes('CREATE_ENVIRONMENT') && audit.includes('DELETE_ENVIRONMENT'));
  });
});
