/**
 * Nothing gets stuck, on the real stack: a promotion or deploy whose workflow is terminated or
 * cancelled from the Temporal CLI ends in a recorded state with traffic where it belongs (the
 * repair loop, audited REPAIRED, or the workflow's own cancellation path), a deploy whose
 * workflow was never started is started by the repair loop, and actions are Updates that answer
 * once applied and 409 with the reason when the state × action table refuses them.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { TEMPORAL_CLI } from '../../src/stack/temporal-dev-server';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store';
import { DEFAULT_AUTOSCALING } from '../../src/shared/schemas';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const run = promisify(execFile);
const example = (name: string): string => path.join(PROJECT_ROOT, 'examples', name);
const fixture = (name: string): string => path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', name);

interface Promotion {
  id: string;
  status: string;
  percent_traffic_to_new_version: number;
  pending_action: string | null;
  message: string | null;
  ended_at: string | null;
}

describe('recovery: nothing gets stuck (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;
  let modelId: string;
  let previousId: string;
  let candidateId: string;

  const temporal = (...args: string[]) => run(TEMPORAL_CLI, ['workflow', ...args, '--address', stack.env.TEMPORAL_ADDRESS!]);

  async function push(dir: string, ...flags: string[]): Promise<{ id: string; model_id: string; status: string }> {
    const result = await stack.cli(['push', dir, '--output', 'json', ...flags]);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async function promotion(): Promise<Promotion> {
    return (await stack.api('GET', `/v1/models/${modelId}/environments/production/promotion`)).body;
  }

  async function until(what: string, done: (p: Promotion) => boolean, timeoutMs = 60_000): Promise<Promotion> {
    return eventually(
      what,
      async () => {
        const p = await promotion();
        return done(p) ? p : undefined;
      },
      timeoutMs,
      100,
    );
  }

  async function audit(): Promise<{ action: string; actor: string; target: string; details: Record<string, any> }[]> {
    return (await stack.api('GET', `/v1/models/${modelId}/audit_logs`)).body.audit_logs;
  }

  /** Which deployments served `count` production requests. */
  async function servedBy(count: number): Promise<Set<string | null>> {
    const served = new Set<string | null>();
    for (let i = 0; i < count; i++) {
      const answer = await stack.predict(`/models/${modelId}/production/predict`, { i });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      served.add(answer.deploymentId);
    }
    return served;
  }

  /** Waits until the deploy workflow of a deployment runs (and its build is under way). */
  async function deployRunning(deploymentId: string): Promise<void> {
    const client = await stack.temporalClient();
    try {
      await eventually('the deploy workflow to run', async () =>
        (await client.workflow.getHandle(`deploy:${deploymentId}`).describe()).status.name === 'RUNNING' ? true : undefined,
      );
    } finally {
      await client.connection.close();
    }
  }

  /** Starts a promotion of the candidate and pauses it at 50 % through the API (an Update). */
  async function promoteAndPauseHalfway(): Promise<Promotion> {
    const started = await stack.api('POST', `/v1/models/${modelId}/environments/production/promote`, { deployment_id: candidateId });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until('the first step', (p) => p.id === started.body.id && p.percent_traffic_to_new_version === 50);
    const paused = await stack.api('POST', `/v1/models/${modelId}/environments/production/pause_promotion`);
    // The answer comes once the workflow applied the pause: the promotion it returns is PAUSED.
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.status, 'PAUSED');
    return paused.body;
  }

  before(async () => {
    stack = await TestStack.create();
    await stack.start();
    const first = await push(example('echo'), '--wait', '--model-name', 'recovery');
    modelId = first.model_id;
    previousId = first.id;
    // Two replicas, so a rolling promotion stops halfway (50 %) between its two steps.
    const scaled = await stack.api('PATCH', `/v1/models/${modelId}/deployments/${previousId}/autoscaling_settings`, { min_replica: 2, max_replica: 2 });
    assert.equal(scaled.status, 200, JSON.stringify(scaled.body));
    candidateId = (await push(example('echo'), '--wait', '--model-name', 'recovery')).id;
    await stack.api('PATCH', `/v1/models/${modelId}/environments/production`, {
      promotion_settings: { rolling_deploy_config: { max_surge_percent: 50, stabilization_time_seconds: 1 } },
    });
    await eventually('two ready replicas of the previous deployment', async () => {
      const view = (await stack.api('GET', `/v1/models/${modelId}/deployments/${previousId}`)).body;
      return view.replicas.ready === 2 ? true : undefined;
    });
  });

  after(async () => {
    await stack?.destroy();
  });

  it('answers an action only once the workflow applied it, and 409 with the reason when the state refuses it', async () => {
    const paused = await promoteAndPauseHalfway();
    const again = await stack.api('POST', `/v1/models/${modelId}/environments/production/pause_promotion`);
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /cannot pause: the promotion is already paused/);
    const resume = await stack.api('POST', `/v1/models/${modelId}/environments/production/resume_promotion`);
    assert.equal(resume.status, 200);
    assert.notEqual(resume.body.status, 'PAUSED');
    const forced = await stack.api('POST', `/v1/models/${modelId}/environments/production/force_cancel_promotion`);
    assert.equal(forced.status, 200, JSON.stringify(forced.body));
    assert.equal(forced.body.status, 'CANCELED', 'a force-cancel answers once the promotion has ended');
    assert.ok(forced.body.ended_at);
    const refused = (await audit()).filter((e) => e.details.promotion_id === paused.id && e.action === 'PAUSE');
    assert.equal(refused.length, 1, 'the refused pause changed nothing, not even the audit log');
    assert.deepEqual(await servedBy(6), new Set([previousId]));
  });

  it('repairs a promotion whose workflow was terminated: FAILED, REPAIRED, traffic back, and a new promote is accepted', async () => {
    const paused = await promoteAndPauseHalfway();
    await temporal('terminate', '--workflow-id', `promotion:${modelId}:production`, '--reason', 'chaos test');
    const repaired = await until('the repair', (p) => p.id === paused.id && p.ended_at !== null, 30_000);
    assert.equal(repaired.status, 'FAILED');
    assert.match(repaired.message ?? '', /its workflow was terminated \(chaos test\); repaired: all traffic is back on deployment/);
    const entry = (await audit()).find((e) => e.action === 'REPAIRED' && e.details.promotion_id === paused.id);
    assert.ok(entry, 'the repair is in the audit log');
    assert.equal(entry.actor, 'gantry (repair)');
    assert.equal(entry.details.outcome, 'FAILED');
    assert.deepEqual(await servedBy(10), new Set([previousId]), 'all traffic is on the previous deployment');
    const candidate = (await stack.api('GET', `/v1/models/${modelId}/deployments/${candidateId}`)).body;
    assert.equal(candidate.replicas.desired, 0, 'the candidate is scaled to zero');
    const next = await stack.api('POST', `/v1/models/${modelId}/environments/production/promote`, { deployment_id: candidateId });
    assert.equal(next.status, 202, JSON.stringify(next.body));
    await until('the new promotion to start', (p) => p.id === next.body.id && p.percent_traffic_to_new_version === 50);
    assert.equal((await stack.api('POST', `/v1/models/${modelId}/environments/production/force_cancel_promotion`)).status, 200);
  });

  it('takes `temporal workflow cancel` of a promotion as a graceful cancel: CANCELED with traffic back', async () => {
    const paused = await promoteAndPauseHalfway();
    await temporal('cancel', '--workflow-id', `promotion:${modelId}:production`);
    const canceled = await until('CANCELED', (p) => p.id === paused.id && p.ended_at !== null, 30_000);
    assert.equal(canceled.status, 'CANCELED');
    assert.equal(canceled.percent_traffic_to_new_version, 0);
    const cancel = (await audit()).find((e) => e.action === 'GRACEFUL_CANCEL' && e.details.promotion_id === paused.id);
    assert.equal(cancel?.actor, 'temporal (cancel)');
    assert.deepEqual(await servedBy(10), new Set([previousId]));
  });

  it('repairs a deploy whose workflow was terminated mid-build: BUILD_FAILED with the cause, REPAIRED', async () => {
    const building = await push(fixture('slow-import'), '--model-name', 'recovery');
    assert.equal(building.status, 'BUILDING');
    await deployRunning(building.id);
    await temporal('terminate', '--workflow-id', `deploy:${building.id}`, '--reason', 'chaos test');
    const failed = await eventually(
      'the repair',
      async () => {
        const view = (await stack.api('GET', `/v1/models/${modelId}/deployments/${building.id}`)).body;
        return view.status === 'BUILDING' ? undefined : view;
      },
      30_000,
      200,
    );
    assert.equal(failed.status, 'BUILD_FAILED');
    assert.match(failed.status_message, /its workflow was terminated \(chaos test\)/);
    assert.ok((await audit()).some((e) => e.action === 'REPAIRED' && e.details.deployment_id === building.id));
  });

  it('records a deploy cancelled mid-build as BUILD_FAILED itself', async () => {
    const building = await push(fixture('slow-import'), '--model-name', 'recovery');
    await deployRunning(building.id);
    await temporal('cancel', '--workflow-id', `deploy:${building.id}`);
    const failed = await eventually(
      'the cancellation',
      async () => {
        const view = (await stack.api('GET', `/v1/models/${modelId}/deployments/${building.id}`)).body;
        return view.status === 'BUILDING' ? undefined : view;
      },
      30_000,
      200,
    );
    assert.equal(failed.status, 'BUILD_FAILED');
    assert.equal(failed.status_message, 'the deploy was cancelled');
  });

  it('starts the deploy workflow of a deployment recorded without one (the API stopped between the two)', async () => {
    const store = openSqliteStore(path.join(stack.home, 'gantry.db'));
    let orphanId: string;
    try {
      const orphan = await store.createDeployment({ model_id: modelId, kind: 'published', labels: { orphan: 'yes' }, autoscaling: DEFAULT_AUTOSCALING });
      orphanId = orphan.id;
      fs.copyFileSync(path.join(stack.home, 'archives', `${candidateId}.tar.gz`), path.join(stack.home, 'archives', `${orphan.id}.tar.gz`));
    } finally {
      await store.close();
    }
    const active = await eventually(
      'the repair to deploy it',
      async () => {
        const view = (await stack.api('GET', `/v1/models/${modelId}/deployments/${orphanId}`)).body;
        return view.status === 'ACTIVE' ? view : undefined;
      },
      60_000,
      250,
    );
    assert.equal(active.labels.orphan, 'yes');
    const entry = (await audit()).find((e) => e.action === 'REPAIRED' && e.details.deployment_id === orphanId);
    assert.match(entry?.details.cause ?? '', /never started/);
  });
});
