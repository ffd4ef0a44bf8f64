/**
 * The rollout plan: a pure function from replica count and rolling settings to the steps of
 * a promotion. Each step is a list of actions the promotion workflow runs in order; after
 * step k the rollout stands in state k. Unit-tested exhaustively (test/unit/rollout-plan).
 */

/** One thing a step does. `scale` waits for readiness only when replicas are added. */
export type RolloutAction = { kind: 'scale'; side: 'candidate' | 'previous'; replicas: number } | { kind: 'route'; percent: number };

/** Where a rollout stands between steps. */
export interface RolloutState {
  candidateReplicas: number;
  previousReplicas: number;
  /** Traffic to the candidate, 0–100. */
  percent: number;
}

/** A rollout from `replicas` previous replicas to as many candidate replicas. */
export interface RolloutPlan {
  replicas: number;
  mode: 'surge' | 'unavailable' | 'instant' | 'canary';
  /** Replicas added (surge) or taken away (unavailable) per step. */
  batch: number;
  /** states[0] is the start, states[k] the state after step k. */
  states: RolloutState[];
  /** steps[k] takes states[k] to states[k + 1]. */
  steps: RolloutAction[][];
}

/** What the plan is made from. */
export interface RolloutPlanInput {
  /** N: replicas the previous deployment serves now (at least 1). */
  replicas: number;
  maxSurgePercent: number;
  maxUnavailablePercent: number;
  /** false: one step, candidate straight to N then all traffic. */
  rolling: boolean;
}

const percentOf = (candidate: number, total: number): number => (total === 0 ? 0 : Math.round((100 * candidate) / total));

/**
 * Plans a rollout. Surge: each step scales the candidate up by ceil(N·surge%), routes the
 * candidate's share, then scales the previous down. Unavailable: each step takes
 * floor(N·unavailable%) previous replicas away (traffic first moved off the capacity that
 * goes), then scales the candidate up and routes. When the unavailable count rounds to
 * zero, no replica may be unavailable, so the plan surges by one instead.
 */
export function planRollout(input: RolloutPlanInput): RolloutPlan {
  const n = Math.max(1, Math.floor(input.replicas));
  const start: RolloutState = { candidateReplicas: 0, previousReplicas: n, percent: 0 };
  if (!input.rolling) {
    return {
      replicas: n,
      mode: 'instant',
      batch: n,
      states: [start, { candidateReplicas: n, previousReplicas: 0, percent: 100 }],
      steps: [
        [
          { kind: 'scale', side: 'candidate', replicas: n },
          { kind: 'route', percent: 100 },
          { kind: 'scale', side: 'previous', replicas: 0 },
        ],
      ],
    };
  }
  const unavailable = Math.floor((n * input.maxUnavailablePercent) / 100);
  const surgeMode = input.maxUnavailablePercent === 0 || unavailable === 0;
  const batch = surgeMode ? Math.max(1, Math.ceil((n * input.maxSurgePercent) / 100)) : unavailable;
  const states: RolloutState[] = [start];
  const steps: RolloutAction[][] = [];
  for (let candidate = 0; candidate < n; ) {
    const before = candidate;
    candidate = Math.min(n, candidate + batch);
    const previous = n - candidate;
    const percent = percentOf(candidate, n);
    if (surgeMode) {
      steps.push([
        { kind: 'scale', side: 'candidate', replicas: candidate },
        { kind: 'route', percent },
        { kind: 'scale', side: 'previous', replicas: previous },
      ]);
    } else {
      steps.push([
        // Move traffic off the previous capacity about to go, in proportion to what stays.
        { kind: 'route', percent: percentOf(before, before + previous) },
        { kind: 'scale', side: 'previous', replicas: previous },
        { kind: 'scale', side: 'candidate', replicas: candidate },
        { kind: 'route', percent },
      ]);
    }
    states.push({ candidateReplicas: candidate, previousReplicas: previous, percent });
  }
  return { replicas: n, mode: surgeMode ? 'surge' : 'unavailable', batch, states, steps };
}

/** How many equal traffic stages a canary promotion takes. */
export const CANARY_STAGES = 10;

/**
 * Plans a canary promotion (deprecated in favour of rolling): the candidate goes to N first,
 * then traffic moves in 10 equal stages; the previous keeps N until the cleanup at the end.
 */
export function planCanary(replicas: number): RolloutPlan {
  const n = Math.max(1, Math.floor(replicas));
  const states: RolloutState[] = [{ candidateReplicas: 0, previousReplicas: n, percent: 0 }];
  const steps: RolloutAction[][] = [];
  for (let stage = 1; stage <= CANARY_STAGES; stage++) {
    const percent = (100 * stage) / CANARY_STAGES;
    steps.push([...(stage === 1 ? [{ kind: 'scale', side: 'candidate', replicas: n } as const] : []), { kind: 'route', percent }]);
    states.push({ candidateReplicas: n, previousReplicas: n, percent });
  }
  return { replicas: n, mode: 'canary', batch: n, states, steps };
}

/**
 * The actions that take a rollout back from `from` to `to` (a graceful cancel, one step at a
 * time): the previous deployment up first, then traffic back, then the candidate down, so
 * capacity never drops on the way back.
 */
export function stepBack(from: RolloutState, to: RolloutState): RolloutAction[] {
  return [
    { kind: 'scale', side: 'previous', replicas: Math.max(from.previousReplicas, to.previousReplicas) },
    { kind: 'route', percent: to.percent },
    { kind: 'scale', side: 'candidate', replicas: to.candidateReplicas },
  ];
}
