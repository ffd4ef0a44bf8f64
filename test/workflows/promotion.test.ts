/**
 * promotionWorkflow on the time-skipping test server with typed mock activities: every cell
 * of the state × action table in docs/promotion-states.md, the endings, rollback on failure,
 * instant promotions and hour-long stabilization timers skipped in milliseconds.
 */
import { strict as assert } from 'node:assert';
import { WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { workflowIds } from '../../src/shared/constants';
import { PromotionActionRefused, TemporalWorkflowsClient } from '../../src/temporal/workflows-client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { PromotionSettings } from '../../src/shared/schemas';
import { promotionWorkflow } from '../../src/workflows';
import {
  cancelPromotionSignal,
  forceCancelPromotionSignal,
  forceRollForwardPromotionSignal,
  pausePromotionSignal,
  promotionStatusQuery,
  resumePromotionSignal,
  type PromotionStatus,
} from '../../src/contracts/messages';
import { CANDIDATE, FakeCluster, PREVIOUS, settings } from '../helpers/fake-cluster';
import { startTimeSkipping } from '../helpers/time-skipping';
import { PROMOTION_SIGNALS } from '../replay/promotion-actions';
import type { PromotionActionName, PromotionStatusName } from '../../src/shared/promotion-status';
import type { PromotionOutcome } from '../../src/contracts/workflows';

describe('promotionWorkflow (time-skipping)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let bundle: WorkflowBundleWithSourceMap;
  let counter = 0;

  before(async () => {
    ({ env, bundle } = await startTimeSkipping());
  });

  after(async () => {
    await env?.teardown();
  });

  /** Runs a promotion against the cluster; `drive` gets the handle while it runs. */
  async function promote(
    cluster: FakeCluster,
    promotionSettings: PromotionSettings,
    drive: (handle: WorkflowHandleWithFirstExecutionRunId<typeof promotionWorkflow>) => Promise<void> = async () => {},
  ): Promise<PromotionOutcome> {
    const taskQueue = `promotion-test-${++counter}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: cluster.activities() });
    return worker.runUntil(async () => {
      const handle = await env.client.workflow.start(promotionWorkflow, {
        taskQueue,
        workflowId: workflowIds.promotion('m', `env-${counter}`),
        args: [{ promotionId: `p${counter}`, modelId: 'm', environment: `env-${counter}`, candidateDeploymentId: CANDIDATE, settings: promotionSettings, actor: 'alice' }],
      });
      await drive(handle);
      return handle.result();
    });
  }

  /** Polls the status query (in real time) until `done` says so. */
  async function until(handle: WorkflowHandle, done: (status: PromotionStatus) => boolean, what: string): Promise<PromotionStatus> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const status = await handle.query(promotionStatusQuery);
      if (done(status)) return status;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last status ${JSON.stringify(status)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const blockedOn = (cluster: FakeCluster, key: string) => async () => {
    const deadline = Date.now() + 20_000;
    while (cluster.blockedOn !== key) {
      if (Date.now() > deadline) throw new Error(`the workflow never reached ${key}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  const SIGNALS = PROMOTION_SIGNALS;
  type Action = keyof typeof SIGNALS;

  /** The action's audit entry, asserting it was recorded with the right outcome and actor. */
  function audited(cluster: FakeCluster, action: string, outcome: 'applied' | 'ignored', actor = 'bob'): void {
    const entry = cluster.audit.find((e) => e.action === action && e.actor === actor);
    assert.ok(entry, `no audit entry for ${action} by ${actor}: ${JSON.stringify(cluster.audit.map((e) => e.action))}`);
    assert.equal((entry.details as { outcome: string }).outcome, outcome, `${action} should be ${outcome}`);
  }

  const AUDIT_NAMES: Record<Action, string> = {
    pause: 'PAUSE',
    resume: 'RESUME',
    cancel: 'GRACEFUL_CANCEL',
    force_cancel: 'FORCE_CANCEL',
    force_roll_forward: 'FORCE_ROLL_FORWARD',
  };

  function assertSucceeded(cluster: FakeCluster, outcome: PromotionOutcome): void {
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(cluster.current, CANDIDATE);
    assert.deepEqual(cluster.weights, { [CANDIDATE]: 100 });
    assert.equal(cluster.replicas[CANDIDATE], 2);
    assert.equal(cluster.replicas[PREVIOUS], 0);
    assert.equal(cluster.cleanedUp, 'SCALE_TO_ZERO');
    assert.equal(cluster.audit.at(-1)?.action, 'PROMOTION_SUCCEEDED');
  }

  function assertCanceled(cluster: FakeCluster, outcome: PromotionOutcome): void {
    assert.equal(outcome.status, 'CANCELED');
    assert.equal(cluster.current, PREVIOUS, 'the environment keeps its deployment');
    assert.equal(cluster.percent, 0, 'all traffic back on the previous deployment');
    assert.equal(cluster.replicas[CANDIDATE], 0);
    assert.equal(cluster.replicas[PREVIOUS], 2);
    assert.equal(cluster.audit.at(-1)?.action, 'PROMOTION_CANCELED');
  }

  /** Puts a promotion in `state`, sends `action` there, and lets it run to its end. */
  async function cell(state: 'RELEASING' | 'RAMPING_UP' | 'PAUSED' | 'RAMPING_DOWN', action: Action) {
    const cluster = new FakeCluster();
    const seen: PromotionStatusName[] = [];
    const outcome = await promote(cluster, settings(), async (handle) => {
      const signal = () => handle.signal(SIGNALS[action], { actor: 'bob' });
      if (state === 'RELEASING') {
        cluster.arm('begin');
        await blockedOn(cluster, 'begin')();
        assert.equal((await handle.query(promotionStatusQuery)).status, 'RELEASING');
        await signal();
        await until(handle, (s) => s.actions.some((a) => a.actor === 'bob'), 'the action to be received');
        cluster.release('begin');
      } else if (state === 'RAMPING_UP') {
        cluster.arm(`ready:${CANDIDATE}`);
        await blockedOn(cluster, `ready:${CANDIDATE}`)();
        assert.equal((await handle.query(promotionStatusQuery)).status, 'RAMPING_UP');
        await signal();
        await until(handle, (s) => s.actions.some((a) => a.actor === 'bob'), 'the action to be received');
        cluster.release(`ready:${CANDIDATE}`);
      } else if (state === 'PAUSED') {
        cluster.arm(`ready:${CANDIDATE}`);
        await blockedOn(cluster, `ready:${CANDIDATE}`)();
        await handle.signal(pausePromotionSignal, { actor: 'carol' });
        cluster.release(`ready:${CANDIDATE}`);
        const paused = await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
        assert.equal(paused.percent_traffic_to_new_version, 50, 'paused after step 1 with the split kept');
        await signal();
      } else {
        // RAMPING_DOWN: cancel after step 1; the walk back waits for the previous deployment.
        cluster.arm(`ready:${CANDIDATE}`);
        await blockedOn(cluster, `ready:${CANDIDATE}`)();
        cluster.arm(`ready:${PREVIOUS}`);
        await handle.signal(cancelPromotionSignal, { actor: 'carol' });
        cluster.release(`ready:${CANDIDATE}`);
        await blockedOn(cluster, `ready:${PREVIOUS}`)();
        assert.equal((await handle.query(promotionStatusQuery)).status, 'RAMPING_DOWN');
        await signal();
        await until(handle, (s) => s.actions.some((a) => a.actor === 'bob'), 'the action to be received');
        cluster.release(`ready:${PREVIOUS}`);
      }
      // Follow the promotion, resuming it when the action paused it.
      for (;;) {
        const status = await handle.query(promotionStatusQuery);
        seen.push(status.status);
        if (['SUCCEEDED', 'FAILED', 'CANCELED'].includes(status.status)) break;
        if (status.status === 'PAUSED' && !status.actions.some((a) => a.actor === 'dave')) {
          await handle.signal(resumePromotionSignal, { actor: 'dave' });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    return { cluster, outcome, seen };
  }

  const table: Record<'RELEASING' | 'RAMPING_UP' | 'PAUSED' | 'RAMPING_DOWN', Record<Action, { applies: boolean; ends: 'SUCCEEDED' | 'CANCELED'; via?: PromotionStatusName }>> = {
    RELEASING: {
      pause: { applies: true, ends: 'SUCCEEDED', via: 'PAUSED' },
      resume: { applies: false, ends: 'SUCCEEDED' },
      cancel: { applies: true, ends: 'CANCELED', via: 'RAMPING_DOWN' },
      force_cancel: { applies: true, ends: 'CANCELED' },
      force_roll_forward: { applies: true, ends: 'SUCCEEDED' },
    },
    RAMPING_UP: {
      pause: { applies: true, ends: 'SUCCEEDED', via: 'PAUSED' },
      resume: { applies: false, ends: 'SUCCEEDED' },
      cancel: { applies: true, ends: 'CANCELED', via: 'RAMPING_DOWN' },
      force_cancel: { applies: true, ends: 'CANCELED' },
      force_roll_forward: { applies: true, ends: 'SUCCEEDED' },
    },
    PAUSED: {
      pause: { applies: false, ends: 'SUCCEEDED' },
      resume: { applies: true, ends: 'SUCCEEDED' },
      cancel: { applies: true, ends: 'CANCELED', via: 'RAMPING_DOWN' },
      force_cancel: { applies: true, ends: 'CANCELED' },
      force_roll_forward: { applies: true, ends: 'SUCCEEDED' },
    },
    RAMPING_DOWN: {
      pause: { applies: true, ends: 'CANCELED', via: 'PAUSED' },
      resume: { applies: false, ends: 'CANCELED' },
      cancel: { applies: false, ends: 'CANCELED' },
      force_cancel: { applies: true, ends: 'CANCELED' },
      force_roll_forward: { applies: true, ends: 'SUCCEEDED' },
    },
  };

  for (const [state, row] of Object.entries(table) as [keyof typeof table, (typeof table)[keyof typeof table]][]) {
    for (const [action, expected] of Object.entries(row) as [Action, (typeof row)[Action]][]) {
      it(`${state} × ${action}: ${expected.applies ? 'applies' : 'is ignored'}, ends ${expected.ends}`, async () => {
        const { cluster, outcome, seen } = await cell(state, action);
        audited(cluster, AUDIT_NAMES[action], expected.applies ? 'applied' : 'ignored');
        if (expected.via) assert.ok(seen.includes(expected.via), `passes through ${expected.via}: saw ${seen.join(',')}`);
        if (expected.ends === 'SUCCEEDED') assertSucceeded(cluster, outcome);
        else assertCanceled(cluster, outcome);
      });
    }
  }

  for (const ending of ['SUCCEEDED', 'FAILED', 'CANCELED'] as const) {
    for (const action of Object.keys(SIGNALS) as Action[]) {
      it(`${ending} × ${action}: refused (the promotion has ended) and changes nothing`, async () => {
        const cluster = new FakeCluster();
        if (ending === 'FAILED') cluster.failReady.add(CANDIDATE);
        const outcome = await promote(cluster, settings(), async (handle) => {
          if (ending === 'CANCELED') await handle.signal(forceCancelPromotionSignal, { actor: 'carol' });
          const ended = await handle.result();
          assert.equal(ended.status, ending);
          const before = JSON.stringify({ weights: cluster.weights, replicas: cluster.replicas, current: cluster.current });
          await assert.rejects(handle.signal(SIGNALS[action], { actor: 'bob' }), /completed|not found/i);
          assert.equal(JSON.stringify({ weights: cluster.weights, replicas: cluster.replicas, current: cluster.current }), before);
          assert.equal((await handle.query(promotionStatusQuery)).status, ending, 'the ended promotion still answers its status');
        });
        assert.equal(outcome.status, ending);
      });
    }
  }

  it('rolls forward step by step (traffic 50 then 100) and cleans up the previous deployment', async () => {
    const cluster = new FakeCluster();
    const outcome = await promote(cluster, settings());
    assertSucceeded(cluster, outcome);
    assert.deepEqual(cluster.routed, [50, 100]);
    assert.equal(cluster.audit[0]?.action, 'PROMOTE');
    assert.equal(cluster.audit[0]?.actor, 'alice');
  });

  it('skips hour-long stabilization timers in milliseconds', async () => {
    const cluster = new FakeCluster();
    const started = Date.now();
    const before = await env.currentTimeMs();
    const outcome = await promote(cluster, settings({ stabilization: 3600 }));
    assertSucceeded(cluster, outcome);
    assert.ok((await env.currentTimeMs()) - before >= 3600_000, 'an hour of workflow time passed');
    assert.ok(Date.now() - started < 30_000, 'in far less real time');
  });

  it('fails and puts all traffic back on the previous deployment when the candidate does not become ready', async () => {
    const cluster = new FakeCluster();
    cluster.failReady.add(CANDIDATE);
    const outcome = await promote(cluster, settings());
    assert.equal(outcome.status, 'FAILED');
    assert.match(outcome.message ?? '', /load\(\) raised: OSError: weights missing; all traffic is back on the previous deployment/);
    assert.deepEqual(cluster.routed, [], 'traffic never left the previous deployment');
    assert.equal(cluster.current, PREVIOUS);
    assert.equal(cluster.replicas[CANDIDATE], 0);
    assert.equal(cluster.replicas[PREVIOUS], 2);
    assert.equal(cluster.audit.at(-1)?.action, 'PROMOTION_FAILED');
  });

  it('fails at the second step and rolls traffic back from 50%', async () => {
    const cluster = new FakeCluster();
    const outcome = await promote(cluster, settings(), async (handle) => {
      await until(handle, (s) => s.percent_traffic_to_new_version === 50, 'step 1');
      cluster.failReady.add(CANDIDATE);
    });
    assert.equal(outcome.status, 'FAILED');
    assert.equal(cluster.routed.at(-1), 0);
    assert.equal(cluster.current, PREVIOUS);
  });

  it('switches at once with rolling_deploy false, and when the environment has no deployment yet', async () => {
    const instant = new FakeCluster();
    assertSucceeded(instant, await promote(instant, settings({ rolling_deploy: false })));
    assert.deepEqual(instant.routed, [100]);

    const empty = new FakeCluster(false);
    const outcome = await promote(empty, settings());
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(empty.current, CANDIDATE);
    assert.equal(empty.replicas[CANDIDATE], 2);
  });

  it('keeps the previous deployment at full size with the KEEP cleanup strategy', async () => {
    const cluster = new FakeCluster();
    const outcome = await promote(cluster, settings({ promotion_cleanup_strategy: 'KEEP' }));
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.equal(cluster.replicas[PREVIOUS], 2, 'never scaled down');
    assert.equal(cluster.cleanedUp, 'KEEP');
  });

  it('attributes a signal without an actor to temporal (signal)', async () => {
    const cluster = new FakeCluster();
    const outcome = await promote(cluster, settings(), async (handle) => {
      await handle.signal(forceRollForwardPromotionSignal);
    });
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.ok(cluster.audit.some((e) => e.action === 'FORCE_ROLL_FORWARD' && e.actor === 'temporal (signal)'));
  });

  it('does not fail the workflow on a refused action', async () => {
    const cluster = new FakeCluster();
    await assert.doesNotReject(async () => {
      const outcome = await promote(cluster, settings(), async (handle) => {
        await handle.signal(resumePromotionSignal, { actor: 'bob' });
        await handle.signal(resumePromotionSignal, { actor: 'bob' });
      });
      assert.equal(outcome.status, 'SUCCEEDED');
    }, WorkflowFailedError);
  });

  describe('canary (deprecated ramp_up_while_promoting)', () => {
    const canary = (): PromotionSettings => ({ ...settings(), ramp_up_while_promoting: true, ramp_up_duration_seconds: 600 });

    it('scales the candidate to N, then moves traffic in 10 equal stages over the ramp-up window', async () => {
      const cluster = new FakeCluster();
      const before = await env.currentTimeMs();
      const outcome = await promote(cluster, canary());
      assertSucceeded(cluster, outcome);
      assert.deepEqual(cluster.routed, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
      const elapsed = (await env.currentTimeMs()) - before;
      assert.ok(elapsed >= 540_000, `nine waits of 60 s: ${elapsed} ms of workflow time`);
    });

    it('pauses with the split held and resumes', async () => {
      const cluster = new FakeCluster();
      const outcome = await promote(cluster, canary(), async (handle) => {
        await until(handle, (s) => s.percent_traffic_to_new_version >= 10, 'stage 1');
        await env.sleep(125_000); // two stage waits of workflow time
        await until(handle, (s) => s.percent_traffic_to_new_version >= 30, 'stage 3');
        await handle.signal(pausePromotionSignal, { actor: 'bob' });
        const paused = await until(handle, (s) => s.status === 'PAUSED', 'PAUSED');
        const held = paused.percent_traffic_to_new_version;
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal((await handle.query(promotionStatusQuery)).percent_traffic_to_new_version, held);
        await handle.signal(resumePromotionSignal, { actor: 'bob' });
      });
      assertSucceeded(cluster, outcome);
    });

    it('cancels back stage by stage to the previous deployment', async () => {
      const cluster = new FakeCluster();
      const outcome = await promote(cluster, canary(), async (handle) => {
        await until(handle, (s) => s.percent_traffic_to_new_version >= 10, 'stage 1');
        await env.sleep(125_000);
        await until(handle, (s) => s.percent_traffic_to_new_version >= 30, 'stage 3');
        await handle.signal(cancelPromotionSignal, { actor: 'bob' });
      });
      assertCanceled(cluster, outcome);
      const peak = Math.max(...cluster.routed);
      const down = cluster.routed.slice(cluster.routed.indexOf(peak) + 1);
      assert.deepEqual(
        down,
        [...down].sort((a, b) => b - a),
        `walks back down: ${cluster.routed}`,
      );
    });

    it('rolls forward at once on force-roll-forward', async () => {
      const cluster = new FakeCluster();
      const outcome = await promote(cluster, canary(), async (handle) => {
        await until(handle, (s) => s.percent_traffic_to_new_version >= 10, 'stage 1');
        await handle.signal(forceRollForwardPromotionSignal, { actor: 'bob' });
      });
      assertSucceeded(cluster, outcome);
      assert.ok(cluster.routed.length < 10, `skipped the remaining stages: ${cluster.routed}`);
    });
  });

  it('never takes a candidate that serves another environment below its replicas, even when cancelled', async () => {
    const cluster = new FakeCluster();
    cluster.replicas[CANDIDATE] = 3;
    cluster.floors = { candidate: 3, previous: 0 };
    const outcome = await promote(cluster, settings(), async (handle) => {
      await until(handle, (s) => s.percent_traffic_to_new_version === 50, 'step 1');
      assert.equal(cluster.replicas[CANDIDATE], 3, 'not shrunk to the plan');
      await handle.signal(forceCancelPromotionSignal, { actor: 'bob' });
    });
    assert.equal(outcome.status, 'CANCELED');
    assert.equal(cluster.replicas[CANDIDATE], 3, 'still serving its other environment');
    assert.equal(cluster.percent, 0);
  });

  it('switches at once when the previous deployment sleeps (nothing to move step by step)', async () => {
    const cluster = new FakeCluster();
    cluster.replicas[PREVIOUS] = 0;
    const outcome = await promote(cluster, settings());
    assert.equal(outcome.status, 'SUCCEEDED');
    assert.deepEqual(cluster.routed, [100]);
    assert.equal(cluster.current, CANDIDATE);
  });

  it('waits for the candidate to be ready before sending it all traffic on a force-roll-forward that interrupted its last step', async () => {
    const cluster = new FakeCluster();
    cluster.armReadyOnCall.set(CANDIDATE, 2); // step 2 waits for the second candidate replica
    const outcome = await promote(cluster, settings(), async (handle) => {
      await blockedOn(cluster, `ready:${CANDIDATE}#2`)();
      assert.equal(cluster.percent, 50);
      cluster.armReadyOnCall.set(CANDIDATE, 3); // and so must the roll-forward that interrupts it
      await handle.signal(forceRollForwardPromotionSignal, { actor: 'bob' });
      await blockedOn(cluster, `ready:${CANDIDATE}#3`)();
      assert.equal(cluster.percent, 50, 'no traffic moves before the candidate is ready');
      const deadline = Date.now() + 20_000;
      while (cluster.blocked.has(`ready:${CANDIDATE}#2`)) {
        if (Date.now() > deadline) throw new Error('the interrupted wait was never cancelled');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      cluster.release(`ready:${CANDIDATE}#3`);
    });
    assertSucceeded(cluster, outcome);
  });

  describe('Updates, cancellation and endings that always land', () => {
    /** Sends the action as the API does (the Update, through the API's client) and returns the status it took effect in. */
    const act = async (handle: WorkflowHandle, action: PromotionActionName): Promise<PromotionStatus> => {
      const environment = handle.workflowId.split(':')[2]!;
      const result = await new TemporalWorkflowsClient(env.client).actOnPromotion('m', environment, action, 'bob', 60_000);
      assert.ok(result.done && result.status, `${action} took effect`);
      return result.status;
    };
    /** The reason an action was refused with, asserting the state × action table refused it. */
    async function refusal(update: Promise<unknown>): Promise<string> {
      const error = await update.then(
        () => assert.fail('the action was accepted'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof PromotionActionRefused, String(error));
      return error.message;
    }

    it('answers a pause Update once PAUSED and a cancel once RAMPING_DOWN, and refuses what the table refuses without a trace', async () => {
      const cluster = new FakeCluster();
      const outcome = await promote(cluster, settings({ stabilization: 3600 }), async (handle) => {
        await until(handle, (s) => s.step >= 1, 'the first step');
        const paused = await act(handle, 'PAUSE');
        assert.equal(paused.status, 'PAUSED');
        assert.equal(paused.percent_traffic_to_new_version, 50);
        assert.equal(await refusal(act(handle, 'PAUSE')), 'the promotion is already paused');
        assert.equal(await refusal(act(handle, 'GRACEFUL_CANCEL').then(() => act(handle, 'GRACEFUL_CANCEL'))), 'the promotion is already being cancelled');
      });
      assertCanceled(cluster, outcome);
      assert.equal(cluster.audit.filter((e) => e.action === 'PAUSE').length, 1, 'a refused Update leaves no audit entry');
    });

    it('answers a force-cancel Update once the end is recorded', async () => {
      const cluster = new FakeCluster();
      await promote(cluster, settings({ stabilization: 3600 }), async (handle) => {
        await until(handle, (s) => s.step >= 1, 'the first step');
        const ended = await act(handle, 'FORCE_CANCEL');
        assert.equal(ended.status, 'CANCELED');
        assert.equal(cluster.audit.at(-1)?.action, 'PROMOTION_CANCELED', 'the audit trail is complete when the Update answers');
      });
    });

    it('refuses every action while completing, and ignores the same signals (audited)', async () => {
      const cluster = new FakeCluster();
      cluster.arm('switch');
      const outcome = await promote(cluster, settings({ stabilization: 3600 }), async (handle) => {
        await until(handle, (s) => s.step >= 1, 'the first step');
        void act(handle, 'FORCE_ROLL_FORWARD');
        await blockedOn(cluster, 'switch')();
        assert.equal((await handle.query(promotionStatusQuery)).finishing, 'COMPLETING');
        for (const action of ['GRACEFUL_CANCEL', 'FORCE_CANCEL', 'PAUSE'] as const) {
          assert.match(await refusal(act(handle, action)), /the promotion is completing/);
        }
        await handle.signal(cancelPromotionSignal, { actor: 'carol' });
        await until(handle, (s) => s.actions.some((a) => a.actor === 'carol'), 'the signal');
        cluster.release('switch');
      });
      assertSucceeded(cluster, outcome);
      audited(cluster, 'GRACEFUL_CANCEL', 'ignored', 'carol');
    });

    it('refuses every action while rolling back, and takes traffic off a failed candidate before restoring the previous one', async () => {
      const cluster = new FakeCluster();
      cluster.armReadyOnCall.set(CANDIDATE, 2); // the second step's readiness wait: the candidate fails there
      cluster.failReady.add(`${CANDIDATE}#2`);
      cluster.arm(`ready:${PREVIOUS}`);
      const outcome = await promote(cluster, settings(), async (handle) => {
        await blockedOn(cluster, `ready:${CANDIDATE}#2`)();
        cluster.release(`ready:${CANDIDATE}#2`);
        await blockedOn(cluster, `ready:${PREVIOUS}`)();
        const status = await handle.query(promotionStatusQuery);
        assert.equal(status.finishing, 'ROLLING_BACK');
        assert.equal(status.percent_traffic_to_new_version, 0, 'no traffic on the failed candidate while the previous deployment scales back up');
        assert.match(await refusal(act(handle, 'FORCE_ROLL_FORWARD')), /the promotion is rolling back/);
        cluster.release(`ready:${PREVIOUS}`);
      });
      assert.equal(outcome.status, 'FAILED');
      const back = cluster.writes.lastIndexOf('route 0');
      assert.ok(back >= 0 && back < cluster.writes.lastIndexOf(`scale ${PREVIOUS} 2`), `traffic first, then replicas: ${cluster.writes.join(', ')}`);
      assert.equal(cluster.replicas[CANDIDATE], 0);
    });

    it('lets a force action interrupt a wait for a route to be applied', async () => {
      const cluster = new FakeCluster();
      cluster.arm('route:1');
      const outcome = await promote(cluster, settings(), async (handle) => {
        await blockedOn(cluster, 'route:1')();
        const ended = await act(handle, 'FORCE_CANCEL');
        assert.equal(ended.status, 'CANCELED');
        // The interrupted wait was abandoned by the workflow; end the activity too, or it holds
        // the test server's time skipping for the tests after this one.
        cluster.release('route:1');
      });
      assertCanceled(cluster, outcome);
      assert.deepEqual(cluster.routed, [50, 0]);
    });

    it('fails, with traffic back, when a route is not applied before its deadline', async () => {
      const cluster = new FakeCluster();
      cluster.neverApplied.add(1);
      const outcome = await promote(cluster, settings());
      assert.equal(outcome.status, 'FAILED');
      assert.match(outcome.message ?? '', /was not applied in time: no node is live; all traffic is back on the previous deployment/);
      assert.equal(cluster.percent, 0);
      assert.equal(cluster.replicas[CANDIDATE], 0);
    });

    it('ends FAILED with traffic back, not hanging, on an unexpected activity failure', async () => {
      const cluster = new FakeCluster();
      cluster.failing.set('setTraffic', () => ApplicationFailure.create({ message: 'deployment prev does not exist', type: 'DeploymentNotFound', nonRetryable: true }));
      const outcome = await promote(cluster, settings());
      assert.equal(outcome.status, 'FAILED');
      assert.match(outcome.message ?? '', /^unexpected error: deployment prev does not exist/);
      assert.equal(cluster.replicas[CANDIDATE], 0);
      assert.equal(cluster.audit.at(-1)?.action, 'PROMOTION_FAILED');
    });

    it('takes a cancellation of the workflow itself as a graceful cancel: CANCELED with traffic back', async () => {
      const cluster = new FakeCluster();
      const outcome = await promote(cluster, settings({ stabilization: 3600 }), async (handle) => {
        await until(handle, (s) => s.step >= 1, 'the first step');
        await handle.cancel();
      });
      assertCanceled(cluster, outcome);
      audited(cluster, 'GRACEFUL_CANCEL', 'applied', 'temporal (cancel)');
    });

    it('ends FAILED, recorded, when the start is refused (another promotion controls its deployments)', async () => {
      const cluster = new FakeCluster();
      cluster.refuseBegin = 'promotion p0 of production already controls the replicas of a deployment this promotion needs';
      const outcome = await promote(cluster, settings());
      assert.equal(outcome.status, 'FAILED');
      assert.match(outcome.message ?? '', /^refused: promotion p0/);
      assert.deepEqual(cluster.writes, [], 'nothing was scaled or routed');
    });
  });
});
