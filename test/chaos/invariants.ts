/**
 * The invariants a chaos run checks after every round, read from the API (deployments,
 * environments, promotion history), from Temporal (which workflows run) and from the gateway
 * (a predict on every environment's path). A check returns every invariant that does not hold
 * right now; the engine waits for them to clear and reports what is still there at its deadline.
 */
import { workflowIds } from '../../src/shared/constants';
import { replicaProcesses } from '../helpers/processes';
import type { TestStack } from '../helpers/stack';
import type { PatientApi } from './patient-api';
import type { WorkflowInspector } from './workflows';

/** The invariants, by number, as the report names them. */
export const INVARIANTS: Record<number, string> = {
  0: 'every killed process is restarted and the stack can be observed',
  1: 'no deployment BUILDING, DEPLOYING or UPDATING without a running workflow',
  2: 'every promotion is running in Temporal or ended in the store',
  3: 'every environment routes to ready replicas',
  4: 'a new promotion can start in every environment (and promotions end)',
  5: 'no failed request while the node was up',
  6: 'every deploy and development update settles (its workflow does not run forever)',
  7: 'no replica process outlives its node (no orphaned model server)',
};

/** One invariant that does not hold. */
export interface Problem {
  invariant: number;
  /** Identifies the problem across checks (the same wedge seen twice is one violation). */
  key: string;
  /** One line saying what is wrong. */
  description: string;
}

/** A deployment as `GET /v1/models/{m}/deployments` shows it (the fields the harness uses). */
export interface DeploymentSnapshot {
  id: string;
  name: string;
  kind: 'published' | 'development';
  status: string;
  status_message: string | null;
  environments: string[];
  replicas: { desired: number; ready: number; starting: number };
}

/** A promotion as the API shows it (the fields the harness uses). */
export interface PromotionSnapshot {
  id: string;
  environment: string;
  status: string;
  candidate_deployment_id: string;
  previous_deployment_id: string | null;
  percent_traffic_to_new_version: number;
  ended_at: string | null;
  message: string | null;
}

/** An environment as `GET /v1/models/{m}/environments` shows it (the fields the harness uses). */
export interface EnvironmentSnapshot {
  name: string;
  current_deployment: DeploymentSnapshot | null;
}

/** What one check saw. */
export interface Observation {
  deployments: DeploymentSnapshot[];
  environments: EnvironmentSnapshot[];
  /** Promotions whose record has no `ended_at`, every environment. */
  promotionsInFlight: PromotionSnapshot[];
  problems: Problem[];
}

/** Statuses that say an operation is under way, which only a workflow moves on. */
export const IN_FLIGHT_STATUSES = ['BUILDING', 'DEPLOYING', 'UPDATING'];

/** The inference path of an environment on the gateway. */
export function environmentPath(modelId: string, environment: string): string {
  return environment === 'production' ? `/models/${modelId}/production/predict` : `/models/${modelId}/environments/${environment}/predict`;
}

/** The error code in an error answer's body (`{"error":{"code":…}}`), if any. */
export function errorCode(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const code = (parsed as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Checks the invariants of one model on a running stack. */
export class InvariantChecker {
  constructor(
    private readonly stack: TestStack,
    private readonly api: PatientApi,
    private readonly workflows: WorkflowInspector,
    private readonly modelId: string,
  ) {}

  /**
   * Reads the state and returns every invariant (1–4, 6) that does not hold now. Throws when
   * the API or Temporal cannot be asked (the caller tries again).
   */
  async observe(patienceMs: number, options: { predict: boolean } = { predict: true }): Promise<Observation> {
    const m = this.modelId;
    const get = async (route: string): Promise<any> => {
      const answer = await this.api.call('GET', route, undefined, patienceMs);
      if (answer.status !== 200) throw new Error(`GET ${route} answered ${answer.status}: ${JSON.stringify(answer.body).slice(0, 300)}`);
      return answer.body;
    };
    const deployments: DeploymentSnapshot[] = (await get(`/v1/models/${m}/deployments`)).deployments;
    const environments: EnvironmentSnapshot[] = (await get(`/v1/models/${m}/environments`)).environments;
    const promotionsInFlight: PromotionSnapshot[] = [];
    for (const environment of environments) {
      const history: PromotionSnapshot[] = (await get(`/v1/models/${m}/environments/${environment.name}/promotions`)).promotions;
      promotionsInFlight.push(...history.filter((p) => !p.ended_at));
    }
    const problems: Problem[] = [];
    await this.checkStrayWorkflows(deployments, environments, promotionsInFlight, problems);
    await this.checkOperations(deployments, problems);
    await this.checkPromotions(promotionsInFlight, problems);
    await this.checkRouting(environments, deployments, promotionsInFlight, problems, options.predict);
    this.checkOrphans(problems);
    return { deployments, environments, promotionsInFlight, problems };
  }

  /**
   * Workflows still running for an operation the store says is over: a deploy workflow after its
   * deployment left BUILDING/DEPLOYING (it may still be promoting: it must end, 6), a development
   * update after UPDATING (6), a promotion workflow with no promotion in flight in the store (4:
   * it refuses every new start in its environment).
   */
  private async checkStrayWorkflows(deployments: DeploymentSnapshot[], environments: EnvironmentSnapshot[], inFlight: PromotionSnapshot[], problems: Problem[]): Promise<void> {
    const byId = new Map(deployments.map((d) => [d.id, d]));
    for (const { workflowId } of await this.workflows.runningWorkflows()) {
      const [kind, first, second] = workflowId.split(':');
      if (kind === 'deploy' || kind === 'development') {
        const deployment = byId.get(first ?? '');
        if (!deployment || IN_FLIGHT_STATUSES.includes(deployment.status)) continue; // not this model's, or checked below
        problems.push({
          invariant: 6,
          key: `6:${workflowId}:${deployment.status}`,
          description: `deployment ${deployment.name} (${deployment.id}) is ${deployment.status}, but its workflow ${workflowId} still runs`,
        });
      } else if (kind === 'promotion' && first === this.modelId) {
        if (!environments.some((e) => e.name === second) || inFlight.some((p) => p.environment === second)) continue;
        problems.push({
          invariant: 4,
          key: `4:workflow:${workflowId}`,
          description: `the workflow ${workflowId} runs, but no promotion of ${second} is in flight in the store (a new promotion there cannot start)`,
        });
      }
    }
  }

  /** Invariant 7: every replica process of the stack is a child of the running node (replicas die with their node). */
  private checkOrphans(problems: Problem[]): void {
    let node: number;
    try {
      node = this.stack.childPid('node');
    } catch {
      throw new Error('the node is not running');
    }
    for (const replica of replicaProcesses(this.stack).filter((p) => p.parentPid !== node)) {
      const packageDir = replica.argv[replica.argv.indexOf('--package') + 1] ?? '?';
      problems.push({
        invariant: 7,
        key: `7:orphan:${replica.pid}`,
        description: `replica process ${replica.pid} (${packageDir.split('/').slice(-1)[0]}) outlived its node: its parent is pid ${replica.parentPid}, the node is pid ${node}`,
      });
    }
  }

  /** Invariants 1 and 6: a deployment under way has a running workflow, and settles. */
  private async checkOperations(deployments: DeploymentSnapshot[], problems: Problem[]): Promise<void> {
    for (const deployment of deployments.filter((d) => IN_FLIGHT_STATUSES.includes(d.status))) {
      const label = `deployment ${deployment.name} (${deployment.id}, ${deployment.kind})`;
      const deploy = await this.workflows.describe(workflowIds.deploy(deployment.id));
      const deployState = deploy.status;
      let running = deployState === 'RUNNING' ? [`deploy:${deployment.id}${deploy.reportedProblems ? ` (Temporal reports: ${deploy.reportedProblems})` : ''}`] : [];
      if (deployment.status === 'UPDATING' && running.length === 0) {
        running = await this.workflows.runningDevelopmentUpdates(deployment.id);
      }
      if (running.length === 0) {
        const what =
          deployment.status === 'UPDATING'
            ? `no developmentUpdateWorkflow runs for it (deploy:${deployment.id} is ${deployState})`
            : `its workflow deploy:${deployment.id} is ${deployState}`;
        problems.push({ invariant: 1, key: `1:${deployment.id}:${deployment.status}`, description: `${label} is ${deployment.status} but ${what}` });
      } else {
        problems.push({
          invariant: 6,
          key: `6:${deployment.id}:${deployment.status}`,
          description: `${label} is still ${deployment.status}; its workflow ${running.join(', ')} runs`,
        });
      }
    }
  }

  /** Invariant 2 (a promotion not ended has its own workflow running), and promotions in flight (4: they must end). */
  private async checkPromotions(inFlight: PromotionSnapshot[], problems: Problem[]): Promise<void> {
    for (const promotion of inFlight) {
      const workflowId = workflowIds.promotion(this.modelId, promotion.environment);
      const label = `promotion ${promotion.id} of ${promotion.environment} (${promotion.status}, ${promotion.percent_traffic_to_new_version}% to ${promotion.candidate_deployment_id})`;
      const { status: state, reportedProblems } = await this.workflows.describe(workflowId);
      if (state !== 'RUNNING') {
        problems.push({ invariant: 2, key: `2:${promotion.id}`, description: `${label} has not ended in the store, but its workflow ${workflowId} is ${state}` });
        continue;
      }
      const troubled = reportedProblems ? ` (Temporal reports: ${reportedProblems})` : '';
      let runningId: string | undefined;
      try {
        runningId = await this.workflows.promotionIdOf(workflowId);
      } catch (error) {
        if (!(await this.workflows.reachable())) throw error;
        problems.push({
          invariant: 2,
          key: `2:${promotion.id}:query`,
          description: `${label} has not ended, and its running workflow ${workflowId} does not answer its promotionStatus query${troubled}: ${(error as Error).message}`,
        });
        continue;
      }
      if (runningId !== promotion.id) {
        problems.push({ invariant: 2, key: `2:${promotion.id}`, description: `${label} has not ended in the store, but the running ${workflowId} is promotion ${runningId}` });
      } else {
        problems.push({
          invariant: 4,
          key: `4:${promotion.id}:in-flight`,
          description: `${label} is still in flight (its workflow runs${troubled}), so no new promotion can start in ${promotion.environment}`,
        });
      }
    }
  }

  /** Invariant 3: every deployment an environment sends traffic to has a ready replica, and its path answers 200. */
  private async checkRouting(
    environments: EnvironmentSnapshot[],
    deployments: DeploymentSnapshot[],
    inFlight: PromotionSnapshot[],
    problems: Problem[],
    predict: boolean,
  ): Promise<void> {
    const byId = new Map(deployments.map((d) => [d.id, d]));
    for (const environment of environments) {
      const current = environment.current_deployment;
      if (!current) {
        problems.push({ invariant: 3, key: `3:${environment.name}:no-current`, description: `${environment.name} has no current deployment` });
        continue;
      }
      const promotion = inFlight.find((p) => p.environment === environment.name);
      const served: string[] = [];
      if (!promotion) served.push(current.id);
      else {
        if (promotion.percent_traffic_to_new_version > 0) served.push(promotion.candidate_deployment_id);
        if (promotion.percent_traffic_to_new_version < 100) served.push(promotion.previous_deployment_id ?? current.id);
      }
      for (const id of served) {
        const deployment = byId.get(id);
        if (!deployment || deployment.replicas.ready < 1) {
          const state = deployment ? `${deployment.status}, ${deployment.replicas.ready}/${deployment.replicas.desired} ready` : 'not listed';
          problems.push({
            invariant: 3,
            key: `3:${environment.name}:${id}`,
            description: `${environment.name} sends traffic to deployment ${deployment?.name ?? id} (${id}) which has no ready replica (${state})${promotion ? ` during promotion ${promotion.id} at ${promotion.percent_traffic_to_new_version}%` : ''}`,
          });
        }
      }
      if (predict) {
        const route = environmentPath(this.modelId, environment.name);
        let outcome: string;
        try {
          const answer = await this.api.predictOnce(route);
          if (answer.status === 200) continue;
          outcome = `${answer.status} ${errorCode(answer.body) ?? ''}`.trim();
        } catch (error) {
          outcome = (error as Error).message;
        }
        problems.push({ invariant: 3, key: `3:${environment.name}:predict:${outcome}`, description: `a predict on ${environment.name} (${route}) answered ${outcome}` });
      }
    }
  }
}
