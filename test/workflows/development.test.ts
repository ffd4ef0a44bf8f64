/**
 * developmentUpdateWorkflow on the time-skipping test server with typed mock activities: a live
 * reload and a rebuild, each succeeding and failing (the previous revision put back), and a
 * cancellation that puts the previous revision back too.
 */
import { strict as assert } from 'node:assert';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { BUILD_FAILED, REPLICAS_NOT_READY } from '../../src/contracts/failures';
import { modelConfigSchema } from '../../src/shared/schemas';
import { developmentUpdateWorkflow } from '../../src/workflows';
import { FakeControlPlane } from '../helpers/fake-cluster';
import { startTimeSkipping } from '../helpers/time-skipping';
import type { DevelopmentUpdateInput } from '../../src/contracts/workflows';

describe('developmentUpdateWorkflow (time-skipping)', function () {
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

  const input = (mode?: 'reload'): DevelopmentUpdateInput => ({
    deploymentId: 'dev',
    revision: 5,
    previous: { revision: 4, envKey: 'env-4', config: modelConfigSchema.parse({}), desiredReplicas: 1 },
    deployTimeoutSeconds: 60,
    ...(mode ? { mode, config: modelConfigSchema.parse({ environment_variables: { V: '5' } }) } : {}),
  });

  async function update(plane: FakeControlPlane, mode?: 'reload', whileRunning?: (workflowId: string) => Promise<void>) {
    const taskQueue = `development-test-${++counter}`;
    const workflowId = `development:dev-${counter}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: plane.activities() });
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start(developmentUpdateWorkflow, { taskQueue, workflowId, args: [input(mode)] });
      await whileRunning?.(workflowId);
      return handle.result();
    });
  }

  const notReady = async (): Promise<never> => {
    throw ApplicationFailure.create({ message: 'revision 5 failed to load: SyntaxError', type: REPLICAS_NOT_READY, nonRetryable: true });
  };

  it('live-reloads a revision: the replica runs it, ACTIVE, older revisions released', async () => {
    const plane = new FakeControlPlane({});
    const outcome = await update(plane, 'reload');
    assert.deepEqual(outcome, { deployment_id: 'dev', revision: 5, status: 'UPDATED', woken: false });
    assert.deepEqual(plane.revisions, [5]);
    assert.deepEqual(plane.statuses, ['ACTIVE']);
    assert.deepEqual(plane.released, ['serving 5']);
  });

  it('puts the previous revision back when the reloaded code does not load', async () => {
    const plane = new FakeControlPlane({ ready: notReady });
    const outcome = await update(plane, 'reload');
    assert.equal(outcome.status, 'FAILED');
    assert.deepEqual(plane.revisions, [5, 4], 'revision 5, then 4 again');
    assert.deepEqual(plane.statuses, ['ACTIVE']);
    assert.match(plane.messages.at(-1) ?? '', /^update to revision 5 failed, the previous code serves: revision 5 failed to load/);
    assert.deepEqual(plane.released, ['failed 5']);
  });

  it('rebuilds a revision whose requirements changed, and puts the previous one back when the build fails', async () => {
    const built = new FakeControlPlane({});
    assert.equal((await update(built)).status, 'UPDATED');
    assert.deepEqual(built.statuses, ['UPDATING', 'ACTIVE']);
    assert.deepEqual(built.revisions, [5]);
    const broken = new FakeControlPlane({
      build: () => {
        throw ApplicationFailure.create({ message: 'pip could not install nosuchpackage', type: BUILD_FAILED, nonRetryable: true });
      },
    });
    const outcome = await update(broken);
    assert.equal(outcome.status, 'FAILED');
    assert.deepEqual(broken.statuses, ['UPDATING', 'ACTIVE']);
    assert.deepEqual(broken.revisions, [], 'the record never left revision 4');
  });

  it('puts the previous revision back when the update is cancelled, then ends cancelled', async () => {
    let release!: () => void;
    let waiting = false;
    const plane = new FakeControlPlane({
      ready: () => {
        waiting = true;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    const failure = await update(plane, 'reload', async (workflowId) => {
      for (let i = 0; i < 200 && !waiting; i++) await new Promise((resolve) => setTimeout(resolve, 25));
      const handle = env.client.workflow.getHandle(workflowId);
      await handle.cancel();
      await handle.result().catch(() => undefined);
      release();
    }).then(
      () => assert.fail('a cancelled update does not complete'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof WorkflowFailedError && failure.cause instanceof CancelledFailure, String(failure));
    assert.deepEqual(plane.revisions, [5, 4]);
    assert.match(plane.messages.at(-1) ?? '', /update to revision 5 failed, the previous code serves: the update was cancelled/);
  });
});
