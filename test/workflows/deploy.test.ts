/**
 * deployWorkflow on the time-skipping test server with typed mock activities: every outcome
 * (ACTIVE, BUILD_FAILED, DEPLOY_FAILED), retries of transient failures, and the progress query.
 */
import { strict as assert } from 'node:assert';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { BUILD_FAILED, REPLICAS_NOT_READY } from '../../src/activities/failures';
import { deployWorkflow } from '../../src/workflows';
import { deployProgressQuery, type DeployProgress } from '../../src/workflows/messages';
import { FakeControlPlane } from '../helpers/fake-cluster';
import { startTimeSkipping } from '../helpers/time-skipping';

describe('deployWorkflow (time-skipping)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  let counter = 0;

  before(async () => {
    ({ env, bundle } = await startTimeSkipping());
  });

  after(async () => {
    await env?.teardown();
  });

  async function run(plane: FakeControlPlane, deployTimeoutSeconds = 600, whileRunning?: (workflowId: string) => Promise<void>) {
    const taskQueue = `deploy-test-${++counter}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: plane.activities() });
    const workflowId = `deploy:test-${counter}`;
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start(deployWorkflow, {
        taskQueue,
        workflowId,
        args: [{ deploymentId: `d${counter}`, deployTimeoutSeconds }],
      });
      await whileRunning?.(workflowId);
      return handle.result();
    });
  }

  it('builds, brings replicas up, makes the first deployment production after its route is applied, and ends ACTIVE', async () => {
    const plane = new FakeControlPlane({ minReplica: 2 });
    const started = await env.currentTimeMs();
    const outcome = await run(plane, 900);
    assert.deepEqual(outcome, { deployment_id: outcome.deployment_id, status: 'ACTIVE', became_production: true });
    assert.deepEqual(plane.statuses, ['BUILDING', 'DEPLOYING', 'ACTIVE']);
    assert.deepEqual(plane.desired, [2]);
    assert.deepEqual(plane.routeWaits, [7]);
    assert.ok(plane.awaitedDeadline! >= started + 900_000 && plane.awaitedDeadline! < started + 960_000, 'deadline is workflow start + timeout');
  });

  it('does not touch production when the model already has a production deployment', async () => {
    const plane = new FakeControlPlane({ alreadyHasProduction: true });
    const outcome = await run(plane);
    assert.equal(outcome.status, 'ACTIVE');
    assert.equal(outcome.became_production, false);
    assert.equal(plane.productionCurrent, 'older');
    assert.deepEqual(plane.routeWaits, []);
  });

  it('ends BUILD_FAILED with the cause, without retrying the build or starting replicas', async () => {
    const plane = new FakeControlPlane({
      build: () => {
        throw ApplicationFailure.create({ message: 'model file model/model.py not found in the package', type: BUILD_FAILED, nonRetryable: true });
      },
    });
    const outcome = await run(plane);
    assert.equal(outcome.status, 'BUILD_FAILED');
    assert.equal(outcome.message, 'model file model/model.py not found in the package');
    assert.deepEqual(plane.statuses, ['BUILDING', 'BUILD_FAILED']);
    assert.equal(plane.messages.at(-1), 'model file model/model.py not found in the package');
    assert.equal(plane.buildAttempts, 1);
    assert.deepEqual(plane.desired, []);
  });

  it('retries a build that failed for a passing reason and then succeeds', async () => {
    const plane = new FakeControlPlane({
      build: (attempt) => {
        if (attempt === 1) throw new Error('disk briefly full');
      },
    });
    const outcome = await run(plane);
    assert.equal(outcome.status, 'ACTIVE');
    assert.equal(plane.buildAttempts, 2);
  });

  it('ends DEPLOY_FAILED and scales to zero when replicas do not become ready', async () => {
    const plane = new FakeControlPlane({
      ready: async () => {
        throw ApplicationFailure.create({ message: 'replica d-1 failed to start: load() raised: RuntimeError: boom', type: REPLICAS_NOT_READY, nonRetryable: true });
      },
    });
    const outcome = await run(plane);
    assert.equal(outcome.status, 'DEPLOY_FAILED');
    assert.match(outcome.message ?? '', /load\(\) raised: RuntimeError: boom/);
    assert.deepEqual(plane.statuses, ['BUILDING', 'DEPLOYING', 'DEPLOY_FAILED']);
    assert.deepEqual(plane.desired, [1, 0]);
    assert.equal(plane.productionCurrent, undefined);
  });

  it('answers the progress query while replicas come up', async () => {
    let release!: () => void;
    const plane = new FakeControlPlane({ ready: () => new Promise<void>((resolve) => (release = resolve)) });
    let seen: DeployProgress | undefined;
    const outcome = await run(plane, 600, async (workflowId) => {
      const handle = env.client.workflow.getHandle(workflowId);
      for (let i = 0; i < 100 && !release; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      seen = await handle.query(deployProgressQuery);
      release();
    });
    assert.equal(seen?.status, 'DEPLOYING');
    assert.equal(outcome.status, 'ACTIVE');
  });
});
