/**
 * In-memory stand-ins for Gantry's control plane behind typed mock activities, shared by the
 * time-skipping workflow tests and the replay-history recorder: a model's deployments and one
 * environment for promotions (FakeCluster), and one deployment for deploys (FakeControlPlane).
 */
import { Context, sleep } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../src/contracts/activities';
import { REPLICAS_NOT_READY, ROUTE_NOT_APPLIED } from '../../src/contracts/failures';
import { promotionWeights } from '../../src/activities/promotions';
import { DEFAULT_PROMOTION_SETTINGS, modelConfigSchema, type PromotionSettings } from '../../src/shared/schemas';
import type { NewAuditEntry } from '../../src/contracts/records';

/** The activities a promotion calls. */
export type PromotionActivities = Pick<
  Activities,
  'beginPromotion' | 'recordPromotion' | 'recordAudit' | 'scaleDeployment' | 'awaitReplicasReady' | 'setTraffic' | 'awaitRouteApplied' | 'setCurrentDeployment' | 'cleanUpPrevious'
>;

/** The candidate deployment's id. */
export const CANDIDATE = 'cand';
/** The previous deployment's id. */
export const PREVIOUS = 'prev';

/** A model's deployments and one environment, in memory, behind typed mock activities. */
export class FakeCluster {
  replicas: Record<string, number> = { [CANDIDATE]: 1, [PREVIOUS]: 2 };
  weights: Record<string, number> = { [PREVIOUS]: 100 };
  current: string | null = PREVIOUS;
  cleanedUp: string | undefined;
  audit: NewAuditEntry[] = [];
  /** Every traffic percent routed, in order. */
  routed: number[] = [];
  /** Every scale and route write, in order (`scale prev 2`, `route 0`). */
  writes: string[] = [];
  /** Activities that fail, by name, with the failure they throw. */
  failing = new Map<string, () => Error>();
  /** A route generation that is never applied: awaitRouteApplied on it fails as when its deadline passed. */
  neverApplied = new Set<number>();
  /** Gates: an armed key blocks the activity that hits it until released. */
  private readonly armed = new Set<string>();
  private readonly released = new Set<string>();
  blockedOn: string | undefined;
  failReady = new Set<string>();
  /** Replicas each side keeps because it serves another environment. */
  floors = { candidate: 0, previous: 0 };
  /** Set: beginPromotion refuses the promotion with this reason (it would clash with another). */
  refuseBegin: string | undefined;

  constructor(private readonly hasPrevious = true) {
    if (!hasPrevious) {
      this.current = null;
      this.weights = {};
      this.replicas = { [CANDIDATE]: 1 };
    }
  }

  arm(key: string): void {
    this.armed.add(key);
  }

  release(key: string): void {
    this.released.add(key);
  }

  /** Gates an activity is blocked in right now. */
  readonly blocked = new Set<string>();
  /** How many times each armed gate has been reached. */
  readonly hits = new Map<string, number>();
  /** Calls of awaitReplicasReady per deployment, and the call number that arms its gate. */
  readonly readyCalls = new Map<string, number>();
  readonly armReadyOnCall = new Map<string, number>();

  private async gate(key: string): Promise<void> {
    if (!this.armed.has(key)) return;
    this.hits.set(key, (this.hits.get(key) ?? 0) + 1);
    this.armed.delete(key);
    this.blockedOn = key;
    this.blocked.add(key);
    try {
      while (!this.released.has(key)) {
        Context.current().heartbeat();
        await sleep(20); // throws when the activity is cancelled
      }
    } finally {
      this.released.delete(key);
      this.blocked.delete(key);
      if (this.blockedOn === key) this.blockedOn = undefined;
    }
  }

  get percent(): number {
    return this.weights[CANDIDATE] ?? 0;
  }

  activities(): PromotionActivities {
    return {
      beginPromotion: async () => {
        await this.gate('begin');
        if (this.refuseBegin) return { previousDeploymentId: null, replicas: 0, previousReplicas: 0, floors: this.floors, refused: this.refuseBegin };
        return {
          previousDeploymentId: this.hasPrevious ? PREVIOUS : null,
          replicas: 2,
          previousReplicas: this.hasPrevious ? this.replicas[PREVIOUS]! : 0,
          floors: this.floors,
        };
      },
      recordPromotion: async () => {},
      recordAudit: async ({ entries }) => {
        this.audit.push(...entries);
      },
      scaleDeployment: async ({ deploymentId, replicas }) => {
        this.replicas[deploymentId] = replicas;
        this.writes.push(`scale ${deploymentId} ${replicas}`);
      },
      awaitReplicasReady: async ({ deploymentId }) => {
        const call = (this.readyCalls.get(deploymentId) ?? 0) + 1;
        this.readyCalls.set(deploymentId, call);
        const onCall = `ready:${deploymentId}#${call}`;
        if (call === this.armReadyOnCall.get(deploymentId)) this.arm(onCall);
        await this.gate(onCall);
        await this.gate(`ready:${deploymentId}`);
        if (this.failReady.has(deploymentId) || this.failReady.has(`${deploymentId}#${call}`)) {
          throw ApplicationFailure.create({ message: 'replica cand-1 failed to start: load() raised: OSError: weights missing', type: REPLICAS_NOT_READY, nonRetryable: true });
        }
      },
      setTraffic: async ({ candidateId, previousId, percent }) => {
        const failure = this.failing.get('setTraffic');
        if (failure) throw failure();
        this.weights = promotionWeights(candidateId, previousId, percent);
        this.routed.push(percent);
        this.writes.push(`route ${percent}`);
        return this.routed.length;
      },
      awaitRouteApplied: async ({ generation }) => {
        await this.gate(`route:${generation}`);
        if (this.neverApplied.has(generation)) {
          throw ApplicationFailure.create({
            message: `the route of staging at generation ${generation} was not applied in time: no node is live`,
            type: ROUTE_NOT_APPLIED,
            nonRetryable: true,
          });
        }
      },
      setCurrentDeployment: async ({ deploymentId }) => {
        await this.gate('switch');
        this.current = deploymentId;
        this.weights = { [deploymentId]: 100 };
        return 99;
      },
      cleanUpPrevious: async ({ deploymentId, strategy }) => {
        this.cleanedUp = strategy;
        if (strategy !== 'KEEP') this.replicas[deploymentId] = 0;
        return { applied: strategy };
      },
    };
  }
}

/** Promotion settings for tests: surge 50 %, the given stabilization time (0 by default). */
export const settings = (overrides: Partial<PromotionSettings> & { stabilization?: number } = {}): PromotionSettings => ({
  ...DEFAULT_PROMOTION_SETTINGS,
  ...overrides,
  rolling_deploy_config: {
    max_surge_percent: 50,
    max_unavailable_percent: 0,
    stabilization_time_seconds: overrides.stabilization ?? 0,
  },
});

/** The activities a deploy calls. */
export type DeployActivities = Pick<
  Activities,
  | 'setDeploymentStatus'
  | 'buildDeployment'
  | 'scaleToMinReplicas'
  | 'scaleDeployment'
  | 'awaitReplicasReady'
  | 'adoptIfNoCurrentDeployment'
  | 'awaitRouteApplied'
  | 'promoteAfterDeploy'
  | 'applyRevision'
  | 'startRevision'
  | 'releaseRevisions'
>;

/** A control plane in memory, behind typed mock activities. */
export class FakeControlPlane {
  statuses: string[] = [];
  messages: (string | undefined)[] = [];
  desired: number[] = [];
  buildAttempts = 0;
  awaitedDeadline: number | undefined;
  routeWaits: number[] = [];
  productionCurrent: string | undefined;
  /** Revisions applied to a development deployment, in order. */
  revisions: number[] = [];
  /** Environments a push asked to be promoted to. */
  promotedTo: string[] = [];
  /** What development revisions released (`serving 3`, `failed 4`). */
  released: string[] = [];

  constructor(
    private readonly behaviour: {
      build?: (attempt: number) => void | Promise<void>;
      ready?: () => Promise<void>;
      minReplica?: number;
      alreadyHasProduction?: boolean;
    } = {},
  ) {
    if (behaviour.alreadyHasProduction) this.productionCurrent = 'older';
  }

  activities(): DeployActivities {
    return {
      setDeploymentStatus: async ({ status, message }) => {
        this.statuses.push(status);
        this.messages.push(message);
      },
      buildDeployment: async () => {
        this.buildAttempts++;
        await this.behaviour.build?.(this.buildAttempts);
        return { envKey: 'env', reusedEnvironment: false, config: modelConfigSchema.parse({}) };
      },
      scaleToMinReplicas: async () => {
        const replicas = Math.max(1, this.behaviour.minReplica ?? 1);
        this.desired.push(replicas);
        return replicas;
      },
      scaleDeployment: async ({ replicas }) => {
        this.desired.push(replicas);
      },
      awaitReplicasReady: async ({ deadlineMs }) => {
        this.awaitedDeadline = deadlineMs;
        await this.behaviour.ready?.();
      },
      adoptIfNoCurrentDeployment: async ({ deploymentId }) => {
        if (this.productionCurrent) return { adopted: false };
        this.productionCurrent = deploymentId;
        return { adopted: true, modelId: 'm1', generation: 7 };
      },
      awaitRouteApplied: async ({ generation }) => {
        this.routeWaits.push(generation);
      },
      promoteAfterDeploy: async ({ environment }) => {
        this.promotedTo.push(environment);
        return { promotionId: `promotion-to-${environment}` };
      },
      applyRevision: async ({ revision }) => {
        this.revisions.push(revision);
      },
      startRevision: async ({ revision }) => {
        this.revisions.push(revision);
        return { woken: false };
      },
      releaseRevisions: async ({ serving, failed }) => {
        this.released.push(failed === undefined ? `serving ${serving}` : `failed ${failed}`);
      },
    };
  }
}
