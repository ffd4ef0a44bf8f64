/**
 * The fault-injection run (`npm run chaos`, and a short version in the integration suite).
 *
 * Starts the real stack as `npm start` does, with one echo model serving `production` and
 * `staging` under steady load through the gateway, and a development deployment. Then, round
 * after round, it runs an operation (a push, a promotion with random control actions, or a
 * development update) and injects one fault at a random moment of it: a SIGKILL of the worker,
 * the API, the node or the Temporal dev server (the supervisor restarts them), or `temporal
 * workflow terminate|cancel` on the promotion, deploy or development update under way. After
 * each round it waits for the stack to converge and checks the invariants (./invariants.ts),
 * including that a new promotion can start in every environment; at the end it classifies
 * every failed request of the load (node down, or a violation). Choices come from a seeded PRNG.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoadGenerator } from '../../bench/loadgen';
import { workflowIds } from '../../src/shared/constants';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { replicaProcesses } from '../helpers/processes';
import { TestStack } from '../helpers/stack';
import { FAULT_KINDS, FaultInjector, isProcessKill, type FaultKind, type FaultOutcome } from './faults';
import { environmentPath, IN_FLIGHT_STATUSES, InvariantChecker, type DeploymentSnapshot, type Observation, type Problem, type PromotionSnapshot } from './invariants';
import { ApiOutOfPatience, PatientApi, type ApiAnswer } from './patient-api';
import { SeededRandom } from './random';
import { bump, emptyFaultTally, failureCause, type ChaosReport, type RequestTally, type RoundRecord, type Violation } from './report';
import { WorkflowInspector } from './workflows';

/** How a chaos run is set up. */
export interface ChaosOptions {
  /** Stop once at least this many faults have been injected (and every kind in `faultKinds` at least once). */
  faults: number;
  /** Seed of the PRNG that makes every choice (operation, fault, moment, control actions). */
  seed: number;
  /** Keep the stack's home (GANTRY_HOME) instead of removing it. */
  keep?: boolean;
  /** Receives progress lines. */
  log?: (line: string) => void;
  /** The fault kinds to draw from (default: all). */
  faultKinds?: readonly FaultKind[];
  /** How long a round may take to converge before what still does not hold is a violation (default 120 s). */
  convergenceMs?: number;
  /** Requests per second of the steady load on each environment (default 20). */
  loadRate?: number;
  /** Rounds at most, in case faults keep missing (default 3 × faults + 10). */
  maxRounds?: number;
}

/** The model every round works on. */
const MODEL_NAME = 'chaos-echo';
/** The environments under load. */
const ENVIRONMENTS = ['production', 'staging'] as const;
/** Promotion settings of both environments: two quick rolling steps when N = 2. */
const PROMOTION_SETTINGS = { rolling_deploy_config: { max_surge_percent: 50, stabilization_time_seconds: 1 }, promotion_timeout_seconds: 60 };
/** Control actions a promotion round may send. */
const CONTROL_ACTIONS = ['pause', 'resume', 'cancel', 'force_cancel', 'force_roll_forward'] as const;
/** Requirement sets a development update cycles through; a change of set makes it a rebuild. */
const REQUIREMENT_SETS: readonly string[][] = [[], ['pip'], ['pip>=20']];

type Operation = 'push' | 'promotion' | 'development';

/** What a round's operation did: the fault's outcome, a summary, and what to say about it once the stack has converged. */
interface RoundResult {
  outcome?: FaultOutcome;
  summary: string;
  followUp?: () => Promise<string>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Chaos runs under way, so that an interrupted run can still stop its stack. */
const runsUnderWay = new Set<ChaosRun>();

/** Runs a chaos run and returns what it found. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const run = new ChaosRun(options);
  runsUnderWay.add(run);
  try {
    await run.setUp();
    await run.rounds();
    return await run.finish();
  } finally {
    runsUnderWay.delete(run);
    await run.tearDown();
  }
}

/** Stops the stacks of the chaos runs under way (for an interrupted `npm run chaos`). */
export async function stopChaosRuns(): Promise<void> {
  await Promise.all([...runsUnderWay].map((run) => run.tearDown()));
}

/** The order in which fault kinds are drawn: shuffled decks, a missed fault put back. */
class FaultDeck {
  private deck: FaultKind[] = [];

  constructor(
    private readonly kinds: readonly FaultKind[],
    private readonly random: SeededRandom,
  ) {}

  next(): FaultKind {
    if (this.deck.length === 0) this.deck = this.random.shuffled(this.kinds);
    return this.deck.shift()!;
  }

  putBack(kind: FaultKind): void {
    this.deck.push(kind);
  }
}

/** One chaos run's state. */
class ChaosRun {
  private readonly random: SeededRandom;
  private readonly log: (line: string) => void;
  private readonly convergenceMs: number;
  private stack!: TestStack;
  private api!: PatientApi;
  private workflows!: WorkflowInspector;
  private faults!: FaultInjector;
  private checker!: InvariantChecker;
  private modelId = '';
  private modelDir = '';
  private developmentId = '';
  private revision = 0;
  private requirementSet = 0;
  private readonly loads = new Map<string, { generator: LoadGenerator; startedAt: number }>();
  private readonly violations = new Map<string, Violation>();
  private readonly records: RoundRecord[] = [];
  private readonly faultTally = emptyFaultTally();
  private readonly actions: Record<string, Record<string, number>> = {};
  private readonly operations: Record<string, number> = {};
  private currentRound = 0;
  private tornDown = false;

  constructor(private readonly options: ChaosOptions) {
    this.random = new SeededRandom(options.seed);
    this.log = options.log ?? (() => undefined);
    this.convergenceMs = options.convergenceMs ?? 120_000;
  }

  // ---------------------------------------------------------------- setup and teardown

  /** Starts the stack, the model, its environments, a development deployment and the load. */
  async setUp(): Promise<void> {
    this.log(`seed ${this.options.seed}; starting the stack`);
    this.stack = await TestStack.create();
    await this.stack.start();
    this.log(`stack up: home ${this.stack.home}, API ${this.stack.apiUrl}, gateway ${this.stack.gatewayUrl}, Temporal ${this.stack.env.TEMPORAL_ADDRESS}`);
    this.api = new PatientApi(this.stack);
    this.workflows = new WorkflowInspector(this.stack);
    this.faults = new FaultInjector(this.stack);
    this.modelDir = path.join(this.stack.home, 'chaos-model');
    fs.cpSync(path.join(PROJECT_ROOT, 'examples', 'echo'), this.modelDir, { recursive: true });
    this.writeModel();

    const first = await this.pushPublished({});
    this.modelId = first.model_id;
    this.checker = new InvariantChecker(this.stack, this.api, this.workflows, this.modelId);
    await this.settleDeployment(first.id, 'ACTIVE');
    // Two replicas in production, so that its promotions take two steps.
    this.expectStatus(
      await this.api.call('PATCH', `/v1/models/${this.modelId}/deployments/${first.id}/autoscaling_settings`, { min_replica: 2, max_replica: 2 }),
      200,
      'scale production',
    );
    await this.until('two ready replicas in production', async () => (await this.deployment(first.id)).replicas.ready >= 2);
    this.expectStatus(await this.api.call('PATCH', `/v1/models/${this.modelId}/environments/production`, { promotion_settings: PROMOTION_SETTINGS }), 200, 'production settings');
    this.expectStatus(await this.api.call('POST', `/v1/models/${this.modelId}/environments`, { name: 'staging', promotion_settings: PROMOTION_SETTINGS }), 201, 'create staging');
    const second = await this.pushPublished({});
    await this.settleDeployment(second.id, 'ACTIVE');
    const toStaging = await this.api.call('POST', `/v1/models/${this.modelId}/environments/staging/promote`, { deployment_id: second.id });
    this.expectStatus(toStaging, 202, 'promote to staging');
    await this.awaitPromotionEnd('staging', toStaging.body.id, this.convergenceMs);
    const spare = await this.pushPublished({});
    await this.settleDeployment(spare.id, 'ACTIVE');
    const development = await this.api.push(this.modelDir, { model_name: MODEL_NAME, development: true });
    this.expectStatus(development, 201, 'development push');
    this.developmentId = development.body.id;
    await this.settleDeployment(this.developmentId, 'ACTIVE');

    for (const environment of ENVIRONMENTS) {
      const generator = new LoadGenerator({
        url: `${this.stack.gatewayUrl}${environmentPath(this.modelId, environment)}`,
        apiKey: this.stack.apiKey,
        rate: this.options.loadRate ?? 20,
      });
      generator.start();
      this.loads.set(environment, { generator, startedAt: Date.now() - generator.elapsed() });
    }
    this.log(
      `model ${MODEL_NAME} (${this.modelId}): production ${first.id} (2 replicas), staging ${second.id}, spare ${spare.id}, development ${this.developmentId}; load ${this.options.loadRate ?? 20}/s on each environment`,
    );
    await this.converge();
  }

  /** Stops the load (if still running) and the stack; removes its home unless kept. */
  async tearDown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    for (const { generator } of this.loads.values()) await generator.stop().catch(() => undefined);
    await this.workflows?.close();
    if (!this.stack) return;
    await this.stack.stop();
    // Replicas that outlived a killed node (invariant 7) are not stopped with the stack: stop them here.
    for (const orphan of replicaProcesses(this.stack)) {
      try {
        process.kill(orphan.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (!this.options.keep) await this.stack.destroy();
  }

  // ---------------------------------------------------------------- rounds

  /** Runs rounds until enough faults have been injected. */
  async rounds(): Promise<void> {
    const kinds = this.options.faultKinds ?? FAULT_KINDS;
    const deck = new FaultDeck(kinds, this.random);
    const maxRounds = this.options.maxRounds ?? 3 * this.options.faults + 10;
    const landedKinds = new Set<FaultKind>();
    // A kind that keeps missing (e.g. no promotion can start any more) stops holding the run up.
    const missesInARow = new Map<FaultKind, number>();
    const covered = (kind: FaultKind): boolean => landedKinds.has(kind) || (missesInARow.get(kind) ?? 0) >= 3;
    let landed = 0;
    for (let index = 1; index <= maxRounds; index++) {
      if (landed >= this.options.faults && kinds.every(covered)) break;
      const fault = deck.next();
      const record = await this.round(index, fault);
      this.records.push(record);
      if (record.landed) {
        landed++;
        landedKinds.add(fault);
        missesInARow.set(fault, 0);
        this.faultTally[fault].landed++;
      } else {
        missesInARow.set(fault, (missesInARow.get(fault) ?? 0) + 1);
        this.faultTally[fault].missed++;
        if (!covered(fault)) deck.putBack(fault);
      }
    }
  }

  /** One round: an operation with the fault at a random moment, then convergence and the checks. */
  private async round(index: number, fault: FaultKind): Promise<RoundRecord> {
    this.currentRound = index;
    const startedAt = Date.now();
    let operation = this.operationFor(fault);
    this.log(`round ${index}: ${fault}, during ${operation === 'push' ? 'a push' : operation === 'promotion' ? 'a promotion' : 'a development update'}`);
    let result: RoundResult;
    if (operation === 'promotion') {
      result = await this.promotionRound(fault);
      if (result.outcome === undefined && isProcessKill(fault)) {
        operation = 'push';
        result = await this.pushRound(fault);
      }
    } else if (operation === 'development') {
      result = await this.developmentRound(fault);
      if (result.outcome === undefined && isProcessKill(fault)) {
        operation = 'push';
        result = await this.pushRound(fault);
      }
    } else {
      result = await this.pushRound(fault);
    }
    const outcome = result.outcome;
    const landed = outcome?.landed ?? false;
    this.log(`round ${index}: ${landed ? `injected (${outcome!.detail})` : `missed (${outcome?.detail ?? 'no target'})`} during ${operation}; ${result.summary}`);
    const before = this.violations.size;
    await this.converge();
    const found = [...this.violations.values()].slice(before);
    const after = result.followUp ? await result.followUp().catch((error: Error) => `unknown (${error.message})`) : undefined;
    this.log(
      `round ${index}: ${after ? `${after}; ` : ''}${found.length ? `${found.length} new violation(s):\n  ${found.map((v) => `[${v.invariant}] ${v.description}`).join('\n  ')}` : 'converged, invariants hold'}`,
    );
    const summary = after ? `${result.summary}; ${after}` : result.summary;
    return { index, operation, fault, landed, faultDetail: outcome?.detail ?? 'no target', summary, startedAt, endedAt: Date.now() };
  }

  /** The operation a fault is injected into. */
  private operationFor(fault: FaultKind): Operation {
    if (fault.endsWith('promotion')) return 'promotion';
    if (fault.endsWith('deploy')) return 'push';
    if (fault.endsWith('development update')) return 'development';
    return this.random.pick(['push', 'promotion', 'development'] as const);
  }

  /** Injects the fault after `delayMs` (a process kill) and returns what it did. */
  private async killAfter(fault: FaultKind, delayMs: number): Promise<FaultOutcome> {
    await sleep(delayMs);
    return this.faults.kill(fault);
  }

  /** A push of a new deployment (sometimes promoted to staging by the push), with the fault during it. */
  private async pushRound(fault: FaultKind): Promise<RoundResult> {
    const promoteTo = this.random.chance(0.3) ? 'staging' : undefined;
    const killing = isProcessKill(fault) ? this.killAfter(fault, this.random.between(0, 2500)) : undefined;
    const delayAfterAnswer = this.random.between(0, 1200);
    let answer: ApiAnswer;
    try {
      answer = await this.api.push(this.modelDir, { model_name: MODEL_NAME, ...(promoteTo ? { environment: promoteTo } : {}) });
    } catch (error) {
      return { outcome: await killing, summary: `push: ${(error as Error).message}` };
    }
    if (answer.status !== 201) {
      bump(this.operations, `push → answered ${answer.status}`);
      return { outcome: await killing, summary: `push answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 200)}` };
    }
    const id: string = answer.body.id;
    let outcome = await killing;
    if (!killing) {
      await sleep(delayAfterAnswer);
      outcome = await this.faults.workflowFault(fault, workflowIds.deploy(id));
    }
    return {
      outcome,
      summary: `pushed ${id}${promoteTo ? ' (then promote to staging)' : ''}`,
      followUp: async () => {
        const final = await this.deployment(id);
        bump(this.operations, `push${promoteTo ? ' (promote to staging)' : ''} → ${final.status}`);
        return `deployment ${id} ${final.status}${final.status_message ? ` (${final.status_message})` : ''}`;
      },
    };
  }

  /** A promotion with a random sequence of control actions, with the fault during it. */
  private async promotionRound(fault: FaultKind): Promise<RoundResult> {
    const observation = await this.observeQuietly();
    if (!observation) return { summary: 'no promotion: the stack could not be observed' };
    const usable = ENVIRONMENTS.filter((env) => this.candidateFor(env, observation));
    if (usable.length === 0) return { summary: 'no promotion: no environment can take one (promotions in flight)' };
    const environment = this.random.pick(usable);
    const candidate = this.candidateFor(environment, observation)!;
    const sequence = Array.from({ length: this.random.between(0, 3) }, () => ({ delay: this.random.between(200, 2000), action: this.random.pick(CONTROL_ACTIONS) }));
    // A terminate or cancel needs the workflow still running: it comes before any action that ends the promotion.
    const firstEnding = sequence.findIndex((step) => step.action.startsWith('force_'));
    const endsAt = firstEnding < 0 ? Infinity : sequence.slice(0, firstEnding + 1).reduce((sum, step) => sum + step.delay, 0);
    const faultDelay = isProcessKill(fault) ? this.random.between(0, 4000) : this.random.between(0, Math.max(0, Math.min(2500, endsAt - 150)));
    // A kill may come while the promote request itself is under way; a terminate or cancel needs the workflow started.
    const killing = isProcessKill(fault) ? this.killAfter(fault, faultDelay) : undefined;
    const promoted = await this.api.call('POST', `/v1/models/${this.modelId}/environments/${environment}/promote`, { deployment_id: candidate.id });
    // A retried promote (the API died under the first attempt) finds its own promotion in flight.
    const retriedOwn = promoted.status === 409 && /already in flight/.test(promoted.body?.error?.message ?? '') && promoted.body?.error?.details?.promotion_id;
    if (promoted.status !== 202 && !retriedOwn) {
      bump(this.operations, `promotion → refused ${promoted.status}`);
      return { outcome: await killing, summary: `promote ${candidate.id} to ${environment} answered ${promoted.status}: ${JSON.stringify(promoted.body).slice(0, 200)}` };
    }
    const promotionId: string = promoted.status === 202 ? promoted.body.id : promoted.body.error.details.promotion_id;
    const acting = (async () => {
      for (const step of sequence) {
        await sleep(step.delay);
        let answer: string;
        try {
          answer = String((await this.api.call('POST', `/v1/models/${this.modelId}/environments/${environment}/${step.action}_promotion`, undefined, 40_000)).status);
        } catch (error) {
          const lastStatus = error instanceof ApiOutOfPatience ? error.lastStatus : undefined;
          answer = lastStatus ? `${lastStatus} for 40 s` : 'no answer for 40 s';
        }
        this.actions[step.action] ??= {};
        bump(this.actions[step.action]!, answer);
      }
    })();
    const faulting = killing ?? sleep(faultDelay).then(() => this.faults.workflowFault(fault, workflowIds.promotion(this.modelId, environment)));
    const [outcome] = await Promise.all([faulting, acting]);
    const actions = sequence.map((s) => s.action).join(', ') || 'no actions';
    return {
      outcome,
      summary: `promotion ${promotionId} of ${candidate.id} to ${environment} (${actions})`,
      followUp: async () => {
        const promotion = await this.promotion(environment, promotionId);
        const status = promotion?.ended_at ? promotion.status : `still ${promotion?.status ?? 'unknown'} (not ended)`;
        bump(this.operations, `promotion → ${promotion?.ended_at ? promotion.status : 'not ended'}`);
        return `promotion ${promotionId} ${status}${promotion?.message ? ` (${promotion.message})` : ''}`;
      },
    };
  }

  /** A development update: a live reload of new code, or a rebuild (requirements changed), with the fault during it. */
  private async developmentRound(fault: FaultKind): Promise<RoundResult> {
    const development = await this.deployment(this.developmentId).catch(() => undefined);
    if (!development || IN_FLIGHT_STATUSES.includes(development.status)) {
      return { summary: `no development update: the development deployment is ${development?.status ?? 'unreadable'}` };
    }
    const rebuild = fault.endsWith('development update') || this.random.chance(0.35);
    this.revision++;
    if (rebuild) this.requirementSet = (this.requirementSet + 1) % REQUIREMENT_SETS.length;
    this.writeModel();
    const killing = isProcessKill(fault) ? this.killAfter(fault, this.random.between(0, rebuild ? 3000 : 500)) : undefined;
    const delayAfterAnswer = this.random.between(0, 2000);
    let answer: ApiAnswer;
    try {
      answer = await this.api.push(this.modelDir, { model_name: MODEL_NAME, development: true });
    } catch (error) {
      return { outcome: await killing, summary: `development push: ${(error as Error).message}` };
    }
    const update = answer.body?.development_update as { update: string; revision: number } | undefined;
    bump(this.operations, `development push (${rebuild ? 'new requirements' : 'code only'}) → ${update?.update ?? `answered ${answer.status}`}`);
    let outcome = await killing;
    if (!killing) {
      if (update?.update === 'rebuilding') {
        await sleep(delayAfterAnswer);
        const running = await this.workflows.runningDevelopmentUpdates(this.developmentId, update.revision).catch(() => []);
        outcome = running[0]
          ? await this.faults.workflowFault(fault, running[0])
          : { kind: fault, landed: false, detail: `the rebuild of revision ${update.revision} was no longer running`, at: Date.now() };
      } else {
        outcome = { kind: fault, landed: false, detail: `no rebuild to hit (${update?.update ?? answer.status})`, at: Date.now() };
      }
    }
    const how = update ? `${update.update} revision ${update.revision}` : `answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 200)}`;
    return {
      outcome,
      summary: `development push (${rebuild ? 'new requirements' : 'code only'}): ${how}`,
      followUp: async () => {
        const final = await this.deployment(this.developmentId);
        return `development deployment ${final.status}${final.status_message ? ` (${final.status_message})` : ''}`;
      },
    };
  }

  // ---------------------------------------------------------------- convergence and checks

  /**
   * Waits until every invariant holds (or the deadline passes: what still does not hold is a
   * violation), resuming paused promotions meanwhile; then checks that a new promotion can
   * start (and end) in every environment.
   */
  private async converge(): Promise<void> {
    for (const why of await this.faults.awaitRestarts()) this.violate({ invariant: 0, key: `0:restart:${why}`, description: why });
    const deadline = Date.now() + this.convergenceMs;
    let observation: Observation | undefined;
    for (;;) {
      let failure: string | undefined;
      try {
        observation = await this.checker.observe(Math.max(5000, deadline - Date.now()));
      } catch (error) {
        failure = (error as Error).message;
        observation = undefined;
      }
      if (observation) {
        for (const promotion of observation.promotionsInFlight.filter((p) => p.status === 'PAUSED')) {
          // A paused promotion waits for its user: the harness is that user.
          await this.api.call('POST', `/v1/models/${this.modelId}/environments/${promotion.environment}/resume_promotion`, undefined, 30_000).catch(() => undefined);
        }
        const fresh = observation.problems.filter((p) => !this.violations.has(p.key));
        if (fresh.length === 0) break;
        if (Date.now() > deadline) {
          for (const p of fresh) this.violate(p);
          break;
        }
      } else if (Date.now() > deadline) {
        this.violate({
          invariant: 0,
          key: `0:observe:${this.currentRound}`,
          description: `the harness could not observe the stack for ${this.convergenceMs / 1000} s: ${failure}`,
        });
        return;
      }
      await sleep(500);
    }
    if (observation) await this.probePromotions();
  }

  /** Invariant 4: a promote of a non-current deployment is accepted (202) in every environment, and that promotion ends. */
  private async probePromotions(): Promise<void> {
    for (const environment of ENVIRONMENTS) {
      const state = await this.observeQuietly(false);
      if (!state) continue;
      const blocking = state.promotionsInFlight.find((p) => p.environment === environment);
      const current = state.environments.find((e) => e.name === environment)?.current_deployment?.id;
      // With a promotion (wedged) in flight there, any promotable deployment shows whether a new one is refused.
      const involved = new Set(state.promotionsInFlight.flatMap((p) => [p.candidate_deployment_id, p.previous_deployment_id]));
      const promotable = state.deployments
        .filter((d) => d.kind === 'published' && d.id !== current && (d.status === 'ACTIVE' || d.status === 'SCALED_TO_ZERO'))
        .sort((a, b) => Number(involved.has(a.id)) - Number(involved.has(b.id)));
      const target = this.candidateFor(environment, state) ?? promotable[0];
      if (!target) continue; // nothing to promote there
      const answer = await this.api
        .call('POST', `/v1/models/${this.modelId}/environments/${environment}/promote`, { deployment_id: target.id }, this.convergenceMs)
        .catch((error: Error) => ({ status: 0, body: error.message }));
      if (answer.status === 202) {
        const ended = await this.awaitPromotionEnd(environment, answer.body.id, this.convergenceMs).catch(() => undefined);
        bump(this.operations, `probe promotion → ${ended?.status ?? 'did not end'}`);
        if (!ended) {
          this.violate({
            invariant: 4,
            key: `4:${answer.body.id}:in-flight`,
            description: `the probe promotion ${answer.body.id} of ${target.id} to ${environment} did not end within ${this.convergenceMs / 1000} s`,
          });
        } else if (ended.status === 'FAILED') {
          this.log(`  note: probe promotion ${ended.id} to ${environment} FAILED: ${ended.message}`);
        }
        continue;
      }
      const blocker: string | undefined = blocking?.id ?? answer.body?.error?.details?.promotion_id;
      const message: string = answer.body?.error?.message ?? JSON.stringify(answer.body).slice(0, 200);
      if (blocker && this.violations.has(`4:${blocker}:in-flight`)) continue; // the same promotion that never ends, already reported
      this.violate({
        invariant: 4,
        key: `4:${environment}:refused:${blocker ?? message}`,
        description: `a promote of ${target.id} (${target.status}) to ${environment} answered ${answer.status}: ${message}`,
      });
    }
  }

  /** A deployment the environment can be promoted to (published, ACTIVE or asleep, not current there, not in a promotion in flight). */
  private candidateFor(environment: string, observation: Observation): DeploymentSnapshot | undefined {
    const inFlight = observation.promotionsInFlight;
    if (inFlight.some((p) => p.environment === environment)) return undefined;
    const current = observation.environments.find((e) => e.name === environment)?.current_deployment?.id;
    const involved = new Set(inFlight.flatMap((p: PromotionSnapshot) => [p.candidate_deployment_id, p.previous_deployment_id ?? '']));
    if (current && involved.has(current)) return undefined;
    const usable = observation.deployments.filter((d) => d.kind === 'published' && d.id !== current && !involved.has(d.id));
    return usable.find((d) => d.status === 'ACTIVE') ?? usable.find((d) => d.status === 'SCALED_TO_ZERO');
  }

  /** Records a violation once (the same wedge seen again is not counted again). */
  private violate(problem: Problem): void {
    if (this.violations.has(problem.key)) return;
    this.violations.set(problem.key, { ...problem, round: this.currentRound, stillPresentAtEnd: false });
  }

  /** An observation, or undefined when the stack cannot be observed right now. */
  private async observeQuietly(predict = false): Promise<Observation | undefined> {
    try {
      return await this.checker.observe(this.convergenceMs, { predict });
    } catch {
      return undefined;
    }
  }

  // ---------------------------------------------------------------- the end

  /** Stops the load, looks once more, classifies every failed request and builds the report. */
  async finish(): Promise<ChaosReport> {
    this.currentRound = 0;
    const summaries = new Map<string, Awaited<ReturnType<LoadGenerator['stop']>>>();
    for (const [environment, { generator }] of this.loads) summaries.set(environment, await generator.stop());
    const last = await this.observeQuietly(true);
    if (last) {
      const present = new Set(last.problems.map((p) => p.key));
      // A refused promote is still there as long as the promotion that blocked it is in flight.
      for (const promotion of last.promotionsInFlight) for (const environment of ENVIRONMENTS) present.add(`4:${environment}:refused:${promotion.id}`);
      for (const violation of this.violations.values()) violation.stillPresentAtEnd = present.has(violation.key);
    }

    const requests: RequestTally = { sent: 0, ok: 0, skipped: 0, nodeDown: {}, nodeUp: {} };
    const upFailures = new Map<string, { round: number; environment: string; cause: string; count: number; firstAt: number }>();
    for (const [environment, { generator, startedAt }] of this.loads) {
      const summary = summaries.get(environment)!;
      requests.sent += summary.sent;
      requests.ok += summary.ok;
      requests.skipped += summary.skipped;
      for (const sample of generator.failures()) {
        const from = startedAt + sample.at;
        const cause = failureCause(sample);
        if (this.faults.nodeDownBetween(from, from + sample.latencyMs)) {
          bump(requests.nodeDown, cause);
          continue;
        }
        bump(requests.nodeUp, cause);
        const round = this.records.find((r) => from >= r.startedAt && from <= r.endedAt)?.index ?? 0;
        const key = `5:${round}:${environment}:${cause}`;
        const entry = upFailures.get(key) ?? { round, environment, cause, count: 0, firstAt: from };
        entry.count++;
        upFailures.set(key, entry);
      }
    }
    for (const [key, f] of upFailures) {
      this.violations.set(key, {
        invariant: 5,
        key,
        round: f.round,
        description: `${f.count} request(s) to ${f.environment} failed with ${f.cause} while the node was up (first at ${new Date(f.firstAt).toISOString()})`,
        stillPresentAtEnd: false,
      });
    }
    const report: ChaosReport = {
      seed: this.options.seed,
      faultsAsked: this.options.faults,
      rounds: this.records,
      faults: this.faultTally,
      violations: [...this.violations.values()].sort((a, b) => a.round - b.round || a.invariant - b.invariant),
      requests,
      actions: this.actions,
      operations: this.operations,
      harnessRetries: this.api.retries,
      ...(this.options.keep ? { keptHome: this.stack.home } : {}),
    };
    return report;
  }

  // ---------------------------------------------------------------- helpers

  /** Writes the model's files for the current revision and requirement set. */
  private writeModel(): void {
    const requirements = REQUIREMENT_SETS[this.requirementSet]!;
    fs.writeFileSync(
      path.join(this.modelDir, 'config.yaml'),
      [
        `model_name: ${MODEL_NAME}`,
        `requirements: ${JSON.stringify(requirements)}`,
        'environment_variables:',
        `  GREETING: hello-${this.revision}`,
        'model_class_name: Model',
        '',
      ].join('\n'),
    );
    const model = path.join(this.modelDir, 'model', 'model.py');
    const source = fs.readFileSync(model, 'utf8').replace(/\n# chaos revision \d+\n$/, '\n');
    fs.writeFileSync(model, `${source}\n# chaos revision ${this.revision}\n`);
  }

  /** Pushes a published deployment; returns the new deployment. */
  private async pushPublished(options: Record<string, unknown>): Promise<{ id: string; model_id: string }> {
    const answer = await this.api.push(this.modelDir, { model_name: MODEL_NAME, ...options });
    this.expectStatus(answer, 201, 'push');
    return answer.body;
  }

  /** A deployment as the API shows it. */
  private async deployment(id: string): Promise<DeploymentSnapshot> {
    const answer = await this.api.call('GET', `/v1/models/${this.modelId}/deployments/${id}`);
    this.expectStatus(answer, 200, `GET deployment ${id}`);
    return answer.body;
  }

  /** Waits until the deployment has left BUILDING/DEPLOYING/UPDATING (and, with `expected`, checks where it went). */
  private async settleDeployment(id: string, expected?: string): Promise<DeploymentSnapshot> {
    let last: DeploymentSnapshot | undefined;
    await this.until(`deployment ${id} to settle`, async () => {
      last = await this.deployment(id);
      return !IN_FLIGHT_STATUSES.includes(last.status);
    });
    if (expected && last!.status !== expected) throw new Error(`deployment ${id} is ${last!.status}, not ${expected}: ${last!.status_message}`);
    return last!;
  }

  /** A promotion of an environment as its history shows it. */
  private async promotion(environment: string, promotionId: string): Promise<PromotionSnapshot | undefined> {
    const answer = await this.api.call('GET', `/v1/models/${this.modelId}/environments/${environment}/promotions`);
    return (answer.body?.promotions as PromotionSnapshot[] | undefined)?.find((p) => p.id === promotionId);
  }

  /** Waits until a promotion has ended in the store; returns it. */
  private async awaitPromotionEnd(environment: string, promotionId: string, timeoutMs: number): Promise<PromotionSnapshot> {
    let ended: PromotionSnapshot | undefined;
    await this.until(
      `promotion ${promotionId} to end`,
      async () => {
        const promotion = await this.promotion(environment, promotionId);
        if (promotion?.ended_at) ended = promotion;
        return ended !== undefined;
      },
      timeoutMs,
    );
    return ended!;
  }

  /** Polls until `check` is true, or throws after `timeoutMs`. */
  private async until(what: string, check: () => Promise<boolean>, timeoutMs = this.convergenceMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    for (;;) {
      try {
        if (await check()) return;
      } catch (error) {
        lastError = `: ${(error as Error).message}`;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError}`);
      await sleep(300);
    }
  }

  private expectStatus(answer: ApiAnswer, status: number, what: string): void {
    if (answer.status !== status) throw new Error(`${what}: expected ${status}, got ${answer.status}: ${JSON.stringify(answer.body).slice(0, 500)}`);
  }
}
