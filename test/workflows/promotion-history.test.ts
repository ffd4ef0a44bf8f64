/**
 * A long-lived promotion keeps its history bounded: paused and resumed 1,000 times through the
 * API's Update path, it continues as new with its state and still ends SUCCEEDED. On a
 * time-skipping server of its own, so that nothing another test left running holds its clock.
 */
import { strict as assert } from 'node:assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { workflowIds } from '../../src/shared/constants';
import { TemporalWorkflowsClient } from '../../src/temporal/workflows-client';
import { promotionWorkflow } from '../../src/workflows';
import { promotionStatusQuery } from '../../src/contracts/messages';
import { HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW } from '../../src/workflows/promotion';
import { CANDIDATE, FakeCluster, PREVIOUS, settings } from '../helpers/fake-cluster';
import { startTimeSkipping } from '../helpers/time-skipping';
import type { PromotionActionName } from '../../src/shared/promotion-status';

describe('promotionWorkflow history (time-skipping)', function () {
  this.timeout(600_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;

  before(async () => {
    ({ env, bundle } = await startTimeSkipping());
  });

  after(async () => {
    await env?.teardown();
  });

  it('stays bounded through 1,000 pauses and resumes (continuing as new with its state) and still succeeds', async () => {
    const cluster = new FakeCluster();
    const taskQueue = 'promotion-history';
    const environment = 'staging';
    const workflowId = workflowIds.promotion('m', environment);
    const actions = new TemporalWorkflowsClient(env.client);
    /** Sends the action as the API does and returns the status it took effect in. */
    const act = async (action: PromotionActionName): Promise<string | undefined> => {
      const result = await actions.actOnPromotion('m', environment, action, 'bob', 60_000);
      assert.ok(result.done, `${action} took effect`);
      return result.status?.status;
    };
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: cluster.activities() });
    const { outcome, firstRunId } = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(promotionWorkflow, {
        taskQueue,
        workflowId,
        args: [{ promotionId: 'p1', modelId: 'm', environment, candidateDeploymentId: CANDIDATE, settings: settings({ stabilization: 3600 }), actor: 'alice' }],
      });
      for (let polls = 0; (await handle.query(promotionStatusQuery)).step < 1; polls++) {
        assert.ok(polls < 1000, 'the first step ends');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      for (let cycle = 0; cycle < 1000; cycle++) {
        assert.equal(await act('PAUSE'), 'PAUSED');
        assert.equal(await act('RESUME'), 'RAMPING_UP');
      }
      return { outcome: await handle.result(), firstRunId: handle.firstExecutionRunId };
    });

    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(cluster.current, CANDIDATE);
    assert.deepEqual(cluster.weights, { [CANDIDATE]: 100 });
    assert.equal(cluster.replicas[PREVIOUS], 0);
    assert.equal(cluster.audit.filter((e) => e.action === 'PAUSE').length, 1000, 'every pause is audited');
    assert.equal(cluster.audit.filter((e) => e.action === 'RESUME').length, 1000, 'every resume is audited');
    // Follow the chain of runs from the first: each history stays bounded.
    const lengths: number[] = [];
    for (let runId: string | undefined = firstRunId; runId; ) {
      const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
      lengths.push(history.events!.length);
      runId = history.events!.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    assert.ok(lengths.length > 1, 'it continued as new');
    // A run continues as new at its first quiet moment past the threshold; back-to-back actions
    // (the next one arriving while the last one's audit entry is written) can put that a few
    // cycles later on a busy machine, never tens of thousands of events later as without it.
    const total = lengths.reduce((sum, length) => sum + length, 0);
    assert.ok(total > 10 * HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW, `1,000 cycles make a long history in all (${total} events)`);
    assert.ok(Math.max(...lengths) <= HISTORY_EVENTS_BEFORE_CONTINUE_AS_NEW * 1.25, `history lengths: ${lengths.join(', ')}`);
  });
});
