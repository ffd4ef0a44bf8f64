import { strict as assert } from 'node:assert';
import { planCanary, planRollout, stepBack, type RolloutAction, type RolloutState } from '../../src/workflows/rollout-plan';

/** Runs actions on a simulated pair of deployments, checking the invariants after each one. */
function simulate(
  start: RolloutState,
  actions: RolloutAction[],
  check: (ready: { candidate: number; previous: number }, percent: number, where: string) => void,
  label: string,
): RolloutState {
  let candidate = start.candidateReplicas;
  let previous = start.previousReplicas;
  let percent = start.percent;
  actions.forEach((action, i) => {
    if (action.kind === 'route') percent = action.percent;
    else if (action.side === 'candidate')
      candidate = action.replicas; // scaling up waits until ready; down drains at once
    else previous = action.replicas;
    check({ candidate, previous }, percent, `${label} action ${i} ${JSON.stringify(action)}`);
  });
  return { candidateReplicas: candidate, previousReplicas: previous, percent };
}

describe('planRollout (exhaustive: N = 1..20, every surge and unavailable percent)', () => {
  const cases: { n: number; surge: number; unavailable: number }[] = [];
  for (let n = 1; n <= 20; n++) {
    for (let p = 1; p <= 50; p++) {
      cases.push({ n, surge: p, unavailable: 0 });
      cases.push({ n, surge: 0, unavailable: p });
    }
  }

  it(`keeps every invariant over ${cases.length} plans and their graceful cancels from every step`, () => {
    for (const { n, surge, unavailable } of cases) {
      const label = `N=${n} surge=${surge} unavailable=${unavailable}`;
      const plan = planRollout({ replicas: n, maxSurgePercent: surge, maxUnavailablePercent: unavailable, rolling: true });
      const allowedUnavailable = plan.mode === 'unavailable' ? Math.floor((n * unavailable) / 100) : 0;
      let lastPercent = 0;
      let lastCandidate = 0;
      let lastPrevious = n;
      const invariants = (ready: { candidate: number; previous: number }, percent: number, where: string): void => {
        assert.ok(ready.candidate + ready.previous >= n - allowedUnavailable, `${where}: capacity ${ready.candidate + ready.previous} < ${n - allowedUnavailable}`);
        if (percent > 0) assert.ok(ready.candidate >= 1, `${where}: traffic to a candidate with no ready replica`);
        if (percent < 100) assert.ok(ready.previous >= 1, `${where}: traffic to a previous deployment with no ready replica`);
      };
      const monotonic = (ready: { candidate: number; previous: number }, percent: number, where: string): void => {
        invariants(ready, percent, where);
        assert.ok(percent >= lastPercent, `${where}: traffic went back from ${lastPercent} to ${percent}`);
        assert.ok(ready.candidate >= lastCandidate, `${where}: candidate went down`);
        assert.ok(ready.previous <= lastPrevious, `${where}: previous went up`);
        lastPercent = percent;
        lastCandidate = ready.candidate;
        lastPrevious = ready.previous;
      };

      assert.deepEqual(plan.states[0], { candidateReplicas: 0, previousReplicas: n, percent: 0 });
      plan.steps.forEach((step, k) => {
        const reached = simulate(plan.states[k]!, step, monotonic, `${label} step ${k}`);
        assert.deepEqual(reached, plan.states[k + 1], `${label}: step ${k} ends in its state`);
      });
      assert.deepEqual(plan.states.at(-1), { candidateReplicas: n, previousReplicas: 0, percent: 100 }, label);
      if (plan.mode === 'surge') {
        assert.equal(plan.batch, surge > 0 ? Math.max(1, Math.ceil((n * surge) / 100)) : 1, label);
      }
      // A graceful cancel after any number of completed steps walks back to the start safely.
      for (let from = 1; from < plan.states.length; from++) {
        let state = plan.states[from]!;
        for (let to = from - 1; to >= 0; to--) {
          state = simulate(state, stepBack(state, plan.states[to]!), invariants, `${label} back ${from}->${to}`);
          assert.deepEqual(state, plan.states[to]);
        }
      }
    }
  });

  it('follows docs/promotions.md for N=4, surge 25%: one replica a step, 25% traffic a step', () => {
    const plan = planRollout({ replicas: 4, maxSurgePercent: 25, maxUnavailablePercent: 0, rolling: true });
    assert.equal(plan.mode, 'surge');
    assert.deepEqual(
      plan.states.map((s) => s.percent),
      [0, 25, 50, 75, 100],
    );
    assert.deepEqual(plan.steps[0], [
      { kind: 'scale', side: 'candidate', replicas: 1 },
      { kind: 'route', percent: 25 },
      { kind: 'scale', side: 'previous', replicas: 3 },
    ]);
  });

  it('takes previous replicas away first with max_unavailable_percent', () => {
    const plan = planRollout({ replicas: 4, maxSurgePercent: 0, maxUnavailablePercent: 50, rolling: true });
    assert.equal(plan.mode, 'unavailable');
    assert.equal(plan.batch, 2);
    assert.deepEqual(plan.steps[1], [
      { kind: 'route', percent: 100 },
      { kind: 'scale', side: 'previous', replicas: 0 },
      { kind: 'scale', side: 'candidate', replicas: 4 },
      { kind: 'route', percent: 100 },
    ]);
  });

  it('surges by one when the unavailable count rounds to zero (nothing may be unavailable)', () => {
    const plan = planRollout({ replicas: 1, maxSurgePercent: 0, maxUnavailablePercent: 50, rolling: true });
    assert.equal(plan.mode, 'surge');
    assert.equal(plan.batch, 1);
  });

  it('plans an instant promotion as one step: candidate to N, all traffic, previous down', () => {
    const plan = planRollout({ replicas: 3, maxSurgePercent: 25, maxUnavailablePercent: 0, rolling: false });
    assert.equal(plan.mode, 'instant');
    assert.equal(plan.steps.length, 1);
    assert.deepEqual(plan.states.at(-1), { candidateReplicas: 3, previousReplicas: 0, percent: 100 });
  });

  it('plans the (deprecated) canary: candidate to N first, then 10 equal traffic stages, previous kept until cleanup', () => {
    for (let n = 1; n <= 20; n++) {
      const plan = planCanary(n);
      assert.equal(plan.steps.length, 10);
      assert.deepEqual(
        plan.states.slice(1).map((s) => s.percent),
        [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
      );
      assert.deepEqual(plan.steps[0]![0], { kind: 'scale', side: 'candidate', replicas: n });
      let last = 0;
      plan.steps.forEach((step, k) => {
        simulate(
          plan.states[k]!,
          step,
          (ready, percent, where) => {
            assert.ok(ready.previous === n, `${where}: the previous keeps N`);
            if (percent > 0) assert.equal(ready.candidate, n, `${where}: traffic only once the candidate has N`);
            assert.ok(percent >= last);
            last = percent;
          },
          `canary N=${n} step ${k}`,
        );
      });
      let state = plan.states.at(-1)!;
      for (let to = plan.states.length - 2; to >= 0; to--) {
        state = simulate(
          state,
          stepBack(state, plan.states[to]!),
          (ready, percent, where) => {
            if (percent > 0) assert.ok(ready.candidate >= 1, where);
            assert.ok(ready.previous >= 1, where);
          },
          `canary back to ${to}`,
        );
      }
      assert.deepEqual(state, plan.states[0]);
    }
  });
});
