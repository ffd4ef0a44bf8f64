/**
 * decide(): what a promotion does next at a step boundary, as a table of states and pending
 * actions and the decision each must give (docs/architecture.md §4, "Flow"), then the properties
 * that hold for every combination.
 */
import { strict as assert } from 'node:assert';
import type { PromotionActionName } from '../../src/shared/promotion-status';
import { decide, type PromotionDecision, type PromotionLoopState } from '../../src/workflows/promotion-decisions';

/** A promotion ramping up, between steps 2 and 3 of 4, with nothing to wait for. */
const base: PromotionLoopState = { status: 'RAMPING_UP', phase: 'RAMPING_UP', step: 2, totalSteps: 4, stabilizingMs: 0, continueAsNewDue: false };

const rampingDown: Partial<PromotionLoopState> = { status: 'RAMPING_DOWN', phase: 'RAMPING_DOWN' };
const pausedUp: Partial<PromotionLoopState> = { status: 'PAUSED', phase: 'RAMPING_UP' };
const pausedDown: Partial<PromotionLoopState> = { status: 'PAUSED', phase: 'RAMPING_DOWN' };

const cases: { why: string; state: Partial<PromotionLoopState>; pending: PromotionActionName | null; decision: PromotionDecision }[] = [
  // Continuing as new comes first: the pending action is carried into the new run.
  { why: 'a long history continues as new', state: { continueAsNewDue: true }, pending: null, decision: { kind: 'CONTINUE_AS_NEW' } },
  { why: 'even with a force action waiting', state: { continueAsNewDue: true }, pending: 'FORCE_CANCEL', decision: { kind: 'CONTINUE_AS_NEW' } },

  // Force actions, whatever the status and phase.
  { why: 'force-roll-forward while ramping up', state: {}, pending: 'FORCE_ROLL_FORWARD', decision: { kind: 'COMPLETE', because: 'FORCE_ROLL_FORWARD' } },
  { why: 'force-roll-forward while ramping down', state: rampingDown, pending: 'FORCE_ROLL_FORWARD', decision: { kind: 'COMPLETE', because: 'FORCE_ROLL_FORWARD' } },
  { why: 'force-roll-forward while paused', state: pausedUp, pending: 'FORCE_ROLL_FORWARD', decision: { kind: 'COMPLETE', because: 'FORCE_ROLL_FORWARD' } },
  {
    why: 'force-roll-forward during a stabilization wait',
    state: { stabilizingMs: 60_000 },
    pending: 'FORCE_ROLL_FORWARD',
    decision: { kind: 'COMPLETE', because: 'FORCE_ROLL_FORWARD' },
  },
  { why: 'force-cancel while ramping up', state: {}, pending: 'FORCE_CANCEL', decision: { kind: 'CANCEL_AT_ONCE' } },
  { why: 'force-cancel while paused ramping down', state: pausedDown, pending: 'FORCE_CANCEL', decision: { kind: 'CANCEL_AT_ONCE' } },
  { why: 'force-cancel at step 0 ramping down', state: { ...rampingDown, step: 0 }, pending: 'FORCE_CANCEL', decision: { kind: 'CANCEL_AT_ONCE' } },

  // Paused.
  { why: 'a resume while paused ramping up', state: pausedUp, pending: 'RESUME', decision: { kind: 'RESUME' } },
  { why: 'a resume while paused ramping down', state: pausedDown, pending: 'RESUME', decision: { kind: 'RESUME' } },
  { why: 'a cancel while paused ramping up turns back', state: pausedUp, pending: 'GRACEFUL_CANCEL', decision: { kind: 'START_RAMPING_DOWN' } },
  { why: 'paused with nothing pending waits', state: pausedUp, pending: null, decision: { kind: 'WAIT_FOR_ACTION' } },
  { why: 'paused waits even when every step is taken', state: { ...pausedUp, step: 4 }, pending: null, decision: { kind: 'WAIT_FOR_ACTION' } },
  { why: 'paused waits instead of stabilizing', state: { ...pausedUp, stabilizingMs: 60_000 }, pending: null, decision: { kind: 'WAIT_FOR_ACTION' } },

  // A graceful cancel turns a ramp-up back; a pause stops at the boundary.
  { why: 'a cancel while ramping up turns back', state: {}, pending: 'GRACEFUL_CANCEL', decision: { kind: 'START_RAMPING_DOWN' } },
  { why: 'a cancel ends a stabilization wait', state: { stabilizingMs: 60_000 }, pending: 'GRACEFUL_CANCEL', decision: { kind: 'START_RAMPING_DOWN' } },
  { why: 'a pause while ramping up', state: {}, pending: 'PAUSE', decision: { kind: 'PAUSE' } },
  { why: 'a pause while ramping down', state: rampingDown, pending: 'PAUSE', decision: { kind: 'PAUSE' } },
  { why: 'a pause ends a stabilization wait', state: { stabilizingMs: 60_000 }, pending: 'PAUSE', decision: { kind: 'PAUSE' } },

  // Ramping up: the rest of the stabilization wait, the next step, the end.
  { why: 'the last step has not settled yet', state: { stabilizingMs: 1_500 }, pending: null, decision: { kind: 'STABILIZE', ms: 1_500 } },
  { why: 'the wait is over (no time left)', state: { stabilizingMs: 0 }, pending: null, decision: { kind: 'STEP_UP' } },
  { why: 'the wait ended in the past', state: { stabilizingMs: -250 }, pending: null, decision: { kind: 'STEP_UP' } },
  { why: 'the first step', state: { step: 0 }, pending: null, decision: { kind: 'STEP_UP' } },
  { why: 'every step is taken', state: { step: 4 }, pending: null, decision: { kind: 'COMPLETE', because: 'ALL_STEPS_TAKEN' } },
  { why: 'an instant promotion after its one step', state: { step: 1, totalSteps: 1 }, pending: null, decision: { kind: 'COMPLETE', because: 'ALL_STEPS_TAKEN' } },

  // Ramping down: undo a step at a time, then end.
  { why: 'ramping down undoes the last step', state: rampingDown, pending: null, decision: { kind: 'STEP_DOWN' } },
  { why: 'ramping down does not stabilize', state: { ...rampingDown, stabilizingMs: 60_000 }, pending: null, decision: { kind: 'STEP_DOWN' } },
  { why: 'ramping down after every step', state: { ...rampingDown, step: 4 }, pending: null, decision: { kind: 'STEP_DOWN' } },
  { why: 'ramping down at step 0 ends it', state: { ...rampingDown, step: 0 }, pending: null, decision: { kind: 'END_RAMPED_DOWN' } },
  { why: 'a cancel pending while ramping down changes nothing', state: { ...rampingDown, step: 1 }, pending: 'GRACEFUL_CANCEL', decision: { kind: 'STEP_DOWN' } },
];

describe('decide: the promotion controller', () => {
  for (const { why, state, pending, decision } of cases) {
    it(`${why} → ${decision.kind}`, () => {
      assert.deepEqual(decide({ ...base, ...state }, pending), decision);
    });
  }

  it('covers every decision in the table', () => {
    const kinds = new Set(cases.map((c) => c.decision.kind));
    const all: PromotionDecision['kind'][] = [
      'CONTINUE_AS_NEW',
      'COMPLETE',
      'CANCEL_AT_ONCE',
      'RESUME',
      'START_RAMPING_DOWN',
      'PAUSE',
      'WAIT_FOR_ACTION',
      'STABILIZE',
      'STEP_UP',
      'STEP_DOWN',
      'END_RAMPED_DOWN',
    ];
    assert.deepEqual([...kinds].sort(), [...all].sort());
  });

  it('over every combination: a force action always wins, a paused promotion never moves traffic, and steps stay within the plan', () => {
    const statuses = ['RAMPING_UP', 'RAMPING_DOWN', 'PAUSED'] as const;
    const phases = ['RAMPING_UP', 'RAMPING_DOWN'] as const;
    const pendings: (PromotionActionName | null)[] = [null, 'PAUSE', 'RESUME', 'GRACEFUL_CANCEL', 'FORCE_CANCEL', 'FORCE_ROLL_FORWARD'];
    let checked = 0;
    for (const status of statuses) {
      for (const phase of phases) {
        if (status !== 'PAUSED' && status !== phase) continue;
        for (const pending of pendings) {
          for (let step = 0; step <= 3; step++) {
            for (const stabilizingMs of [-1, 0, 500]) {
              const state: PromotionLoopState = { status, phase, step, totalSteps: 3, stabilizingMs, continueAsNewDue: false };
              const { kind } = decide(state, pending);
              const where = JSON.stringify({ state, pending });
              if (pending === 'FORCE_ROLL_FORWARD') assert.equal(kind, 'COMPLETE', where);
              if (pending === 'FORCE_CANCEL') assert.equal(kind, 'CANCEL_AT_ONCE', where);
              if (status === 'PAUSED') assert.ok(!['STEP_UP', 'STEP_DOWN', 'STABILIZE', 'END_RAMPED_DOWN'].includes(kind), where);
              if (kind === 'STEP_UP') assert.ok(phase === 'RAMPING_UP' && step < 3 && stabilizingMs <= 0, where);
              if (kind === 'STEP_DOWN') assert.ok(phase === 'RAMPING_DOWN' && step > 0, where);
              assert.equal(decide(state, pending).kind, kind, `decide is pure: ${where}`);
              checked++;
            }
          }
        }
      }
    }
    assert.equal(checked, 4 * 6 * 4 * 3);
  });
});
