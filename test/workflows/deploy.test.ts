/**
 * deployWorkflow on the time-skipping test server with typed mock activities: every outcome
 * (ACTIVE, BUILD_FAILED, DEPLOY_FAILED), retries of transient failures, and the progress query.
 */
import { strict as assert } from 'node:assert';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { BUILD_FAILED, REPLICAS_NOT_READY, ROUTE_NOT_APPLIED } from '../../src/contracts/failures';
import { deployWorkflow } from '../../src/workflows';
import { deployProgressQuery, type DeployProgress } from '../../src/contracts/messages';
import { FakeControlPlane } from '../helpers/fake-cluster';
import { startTimeSkipping } from '../helpers/time-skipping';
import { DEPLOY_INTERRUPTED } from '../../src/contracts/failures';

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

  describe('endings that always land', () => {
    /** A build (or readiness wait) that blocks until released, and the release. */
    function blocking(): { wait: () => Promise<void>; release: () => void; started: () => boolean } {
      let release!: () => void;
      let started = false;
      const gate = new Promise<void>((resolve) => (release = resolve));
      return {
        wait: () => {
          started = true;
          return gate;
        },
        release: () => release(),
        started: () => started,
      };
    }

    async function cancelWhile(plane: FakeControlPlane, gate: ReturnType<typeof blocking>): Promise<unknown> {
      const failure = await run(plane, 600, async (workflowId) => {
        const handle = env.client.workflow.getHandle(workflowId);
        for (let i = 0; i < 200 && !gate.started(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
        await handle.cancel();
        await handle.result().catch(() => undefined);
        gate.release(); // the activity ends too, so the worker can stop
      }).then(
        () => assert.fail('a cancelled deploy does not complete'),
        (error: unknown) => error,
      );
      assert.ok(failure instanceof WorkflowFailedError && failure.cause instanceof CancelledFailure, String(failure));
      return failure;
    }

    it('records a deploy cancelled while building as BUILD_FAILED, then ends cancelled', async () => {
      const gate = blocking();
      const plane = new FakeControlPlane({ build: gate.wait });
      await cancelWhile(plane, gate);
      assert.deepEqual(plane.statuses, ['BUILDING', 'BUILD_FAILED']);
      assert.equal(plane.messages.at(-1), 'the deploy was cancelled');
      assert.deepEqual(plane.desired, []);
    });

    it('records a deploy cancelled while its replicas come up as DEPLOY_FAILED, scaled to zero', async () => {
      const gate = blocking();
      const plane = new FakeControlPlane({ ready: gate.wait });
      await cancelWhile(plane, gate);
      assert.deepEqual(plane.statuses, ['BUILDING', 'DEPLOYING', 'DEPLOY_FAILED']);
      assert.equal(plane.messages.at(-1), 'the deploy was cancelled');
      assert.deepEqual(plane.desired, [1, 0]);
    });

    it('records an unexpected failure as DEPLOY_FAILED with the cause, and fails the workflow with a typed failure', async () => {
      const plane = new FakeControlPlane({});
      const activities = plane.activities();
      activities.adoptIfNoCurrentDeployment = async () => {
        throw ApplicationFailure.create({ message: 'the environments table is gone', type: 'StoreBroken', nonRetryable: true });
      };
      const taskQueue = `deploy-test-${++counter}`;
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
      const failure = await worker
        .runUntil(env.client.workflow.execute(deployWorkflow, { taskQueue, workflowId: `deploy:test-${counter}`, args: [{ deploymentId: 'd', deployTimeoutSeconds: 60 }] }))
        .then(
          () => assert.fail('the workflow completed'),
          (error: unknown) => error,
        );
      assert.ok(failure instanceof WorkflowFailedError && failure.cause instanceof ApplicationFailure && failure.cause.type === DEPLOY_INTERRUPTED, String(failure));
      assert.deepEqual(plane.statuses, ['BUILDING', 'DEPLOYING', 'DEPLOY_FAILED']);
      assert.equal(plane.messages.at(-1), 'the deploy failed unexpectedly: the environments table is gone');
      assert.deepEqual(plane.desired, [1, 0]);
    });

    it('is ACTIVE, saying so, when the route it became production with is not applied before the deadline', async () => {
      const plane = new FakeControlPlane({});
      const activities = plane.activities();
      activities.awaitRouteApplied = async () => {
        throw ApplicationFailure.create({
          message: 'the route of production at generation 7 was not applied in time: no node is live',
          type: ROUTE_NOT_APPLIED,
          nonRetryable: true,
        });
      };
      const taskQueue = `deploy-test-${++counter}`;
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
      const outcome = await worker.runUntil(
        env.client.workflow.execute(deployWorkflow, { taskQueue, workflowId: `deploy:test-${counter}`, args: [{ deploymentId: 'd', deployTimeoutSeconds: 60 }] }),
      );
      assert.equal(outcome.status, 'ACTIVE');
      assert.equal(outcome.became_production, true);
      assert.match(plane.messages.at(-1) ?? '', /^serves production once a gateway applies its route: .*no node is live/);
    });
  });
});
