/**
 * Promotions: starting one (with every refusal a user can hit), acting on the one in flight,
 * its live status and the history. Knows the store and the workflows; knows nothing of HTTP.
 */
import { newId } from '../shared/ids';
import { workflowIds } from '../shared/constants';
import { promotionActions, type PromotionAction } from '../shared/schemas';
import { promotionInvolves, type DeploymentRecord, type ModelRecord, type PromotionRecord, type Store } from '../store/store';
import { PromotionActionRefused, PromotionAlreadyRunning, type PromotionActionResult, type WorkflowsClient } from '../temporal/workflows-client';
import type { PromotionView } from '../shared/views';
import type { PromotionStatus } from '../contracts/messages';
import { actionRefusal } from '../contracts/promotion-rules';
import type { Actor } from './deployments';
import { conflict, invalid, notFound, unavailable } from './errors';
import type { PromotionWorkflowInput } from '../contracts/workflows';
import type { PromotionActionName } from '../shared/promotion-status';

/** The API's action names → the audit log's. */
export const ACTION_NAMES: Record<PromotionAction, PromotionActionName> = {
  pause: 'PAUSE',
  resume: 'RESUME',
  cancel: 'GRACEFUL_CANCEL',
  force_cancel: 'FORCE_CANCEL',
  force_roll_forward: 'FORCE_ROLL_FORWARD',
};

/** How long a start waits for the environment's previous promotion workflow to close. */
const START_RETRY_MS = 10_000;

/** How long an action request waits for the action to take effect before answering with the pending status. */
export const ACTION_WAIT_MS = 30_000;

/** How long a promote waits for its workflow to record the promotion before answering with what it asked for. */
const RECORD_WAIT_MS = 10_000;

/** Shows a promotion record, merged with the live status when there is one. */
export function promotionView(record: PromotionRecord, live?: PromotionStatus): PromotionView {
  const useLive = live && live.promotion_id === record.id && !record.ended_at;
  return {
    id: record.id,
    model_id: record.model_id,
    environment: record.environment,
    status: useLive ? live.status : record.status,
    candidate_deployment_id: record.candidate_deployment_id,
    previous_deployment_id: (useLive ? live.previous.deployment_id : null) ?? record.previous_deployment_id,
    step: useLive ? live.step : record.step,
    total_steps: useLive ? live.total_steps : record.total_steps,
    percent_traffic_to_new_version: useLive ? live.percent_traffic_to_new_version : record.percent_traffic_to_new_version,
    candidate_replicas: useLive ? live.candidate.replicas : record.candidate_replicas,
    previous_replicas: useLive ? live.previous.replicas : record.previous_replicas,
    pending_action: useLive ? live.pending_action : null,
    message: useLive ? live.message : record.message,
    actor: record.actor,
    started_at: record.started_at,
    updated_at: useLive ? live.updated_at : record.updated_at,
    ended_at: record.ended_at,
    ...(useLive ? { actions: live.actions } : {}),
    allowed_actions: useLive ? allowedActions(live) : [],
  };
}

/** The actions the state × action table accepts in this live status, in the API's names. */
export function allowedActions(live: PromotionStatus): PromotionAction[] {
  const state = { status: live.status, pending: live.pending_action, pausedFrom: live.paused_from, finishing: live.finishing };
  return promotionActions.filter((action) => actionRefusal(state, ACTION_NAMES[action]) === undefined);
}

/** What the promotion service needs. */
export interface PromotionServiceDeps {
  store: Store;
  workflows: WorkflowsClient;
}

/** Operations on promotions. */
export class PromotionService {
  constructor(private readonly deps: PromotionServiceDeps) {}

  /** The in-flight promotion of an environment, if any. */
  async inFlight(model: ModelRecord, environment: string): Promise<PromotionRecord | undefined> {
    return (await this.deps.store.listPromotionsInFlight(model.id)).find((p) => p.environment === environment);
  }

  /** The live workflow status of an in-flight promotion (undefined when Temporal cannot say). */
  private async live(record: PromotionRecord): Promise<PromotionStatus | undefined> {
    try {
      const status = await this.deps.workflows.promotionStatus(record.model_id, record.environment);
      return status?.promotion_id === record.id ? status : undefined;
    } catch {
      return undefined;
    }
  }

  /** Shows a promotion with its live status. */
  async view(record: PromotionRecord): Promise<PromotionView> {
    return promotionView(record, record.ended_at ? undefined : await this.live(record));
  }

  /**
   * Promotes a published deployment (ACTIVE or scaled to zero) of the model to the environment.
   * Refuses, with the reason, what cannot be promoted or would collide with a promotion in flight.
   */
  async promote(model: ModelRecord, environment: string, deployment: DeploymentRecord, actor: Actor): Promise<PromotionView> {
    const { store } = this.deps;
    const env = await store.getEnvironment(model.id, environment);
    if (!env) throw notFound(`environment ${environment} not found for model ${model.name}`);
    if (deployment.kind === 'development') {
      throw invalid('a development deployment is promoted with POST /v1/models/{model}/deployments/development/promote, which publishes it first');
    }
    if (deployment.status !== 'ACTIVE' && deployment.status !== 'SCALED_TO_ZERO') {
      throw conflict(`deployment ${deployment.name} is ${deployment.status}; only ACTIVE or scaled-to-zero deployments can be promoted`);
    }
    if (env.current_deployment_id === deployment.id) {
      throw conflict(`deployment ${deployment.name} is already the current deployment of ${environment}`);
    }
    const inFlight = await store.listPromotionsInFlight(model.id);
    const running = inFlight.find((p) => p.environment === environment);
    if (running) {
      throw conflict(`a promotion of ${environment} is already in flight: ${running.id} (deployment ${running.candidate_deployment_id}, ${running.status})`, {
        promotion_id: running.id,
      });
    }
    const involved = new Set([deployment.id, env.current_deployment_id].filter((id): id is string => id !== null));
    const clash = inFlight.find((p) => [...involved].some((id) => promotionInvolves(p, id)));
    if (clash) {
      throw conflict(`promotion ${clash.id} of ${clash.environment} already controls the replicas of a deployment this promotion needs; wait for it to end`, {
        promotion_id: clash.id,
      });
    }

    const id = newId();
    const input: PromotionWorkflowInput = {
      promotionId: id,
      modelId: model.id,
      environment,
      candidateDeploymentId: deployment.id,
      settings: env.promotion_settings,
      actor: actor.name,
      actorSource: actor.source,
      startedAt: new Date().toISOString(),
    };
    try {
      await this.startWorkflow(model, deployment, input);
    } catch (error) {
      if (error instanceof PromotionAlreadyRunning) throw conflict(`a promotion of ${environment} is already running`);
      throw unavailable(`could not start the promotion workflow (is Temporal running?): ${(error as Error).message}`, error);
    }
    // The workflow records the promotion in its first step (refusing it there if another one
    // now controls these deployments); answer with that record once it is there.
    const deadline = Date.now() + RECORD_WAIT_MS;
    for (;;) {
      const record = await store.getPromotion(id);
      if (record?.ended_at && record.status === 'FAILED' && record.message?.startsWith('refused: ')) {
        throw conflict(`cannot promote: ${record.message.slice('refused: '.length)}`, { promotion_id: id, recorded: true });
      }
      if (record) return promotionView(record);
      if (Date.now() > deadline) return promotionView(requestedRecord(input, env.current_deployment_id));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * Starts the workflow. A promotion records its end just before its workflow closes, so a
   * start that finds the previous run still closing is retried for a few seconds.
   */
  private async startWorkflow(model: ModelRecord, deployment: DeploymentRecord, input: PromotionWorkflowInput): Promise<void> {
    const deadline = Date.now() + START_RETRY_MS;
    for (;;) {
      try {
        return await this.deps.workflows.startPromotion(model, deployment, input);
      } catch (error) {
        if (!(error instanceof PromotionAlreadyRunning) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** The environment's in-flight promotion, or else its latest one; not_found when it never had one. */
  async current(model: ModelRecord, environment: string): Promise<PromotionView> {
    const record = (await this.inFlight(model, environment)) ?? (await this.deps.store.listPromotions(model.id, environment, { limit: 1 }))[0];
    if (!record) throw notFound(`environment ${environment} of model ${model.name} has had no promotion`);
    return this.view(record);
  }

  /** The environment's promotions, newest first, with their outcomes. */
  async history(model: ModelRecord, environment: string): Promise<PromotionView[]> {
    const records = await this.deps.store.listPromotions(model.id, environment);
    return Promise.all(records.map((record) => this.view(record)));
  }

  /**
   * Sends an action to the environment's in-flight promotion and waits (up to `waitMs`) until it
   * has taken effect. Refuses, with the reason, an action the promotion's state does not allow.
   */
  async act(model: ModelRecord, environment: string, action: PromotionAction, actor: Actor, waitMs = ACTION_WAIT_MS): Promise<{ done: boolean; promotion: PromotionView }> {
    const record = await this.inFlight(model, environment);
    if (!record) throw conflict(`environment ${environment} of model ${model.name} has no promotion in flight`);
    const name = ACTION_NAMES[action];
    let live: PromotionStatus | undefined;
    try {
      live = await this.deps.workflows.promotionStatus(model.id, environment);
    } catch (error) {
      throw unavailable(`the promotion workflow of ${environment} does not answer (is Temporal running?): ${(error as Error).message}`, error);
    }
    if (live?.promotion_id !== record.id) {
      throw conflict(`the workflow of promotion ${record.id} is not running; the repair loop records its end within seconds`, { promotion_id: record.id });
    }
    if (live.version !== 2) {
      // Started before actions were Updates: the signal, checked against the same table first.
      const refusal = actionRefusal({ status: live.status, pending: live.pending_action, pausedFrom: live.paused_from }, name);
      if (refusal) throw conflict(`cannot ${action.replace(/_/g, ' ')}: ${refusal}`);
      await this.deps.workflows.signalPromotion(model.id, environment, name, actor.name);
      return { done: false, promotion: await this.view(record) };
    }
    let result: PromotionActionResult;
    try {
      result = await this.deps.workflows.actOnPromotion(model.id, environment, name, actor.name, waitMs, actor.source);
    } catch (error) {
      if (error instanceof PromotionActionRefused) throw conflict(`cannot ${action.replace(/_/g, ' ')}: ${error.message}`);
      throw unavailable(`the promotion workflow of ${environment} did not take the action (is the worker running?): ${(error as Error).message}`, error);
    }
    const now = (await this.deps.store.getPromotion(record.id)) ?? record;
    return { done: result.done, promotion: promotionView(now, result.status ?? (await this.live(now))) };
  }
}

/** The record a promotion will have once its workflow writes it: what the API asked for, not started yet. */
function requestedRecord(input: PromotionWorkflowInput, previousId: string | null): PromotionRecord {
  return {
    id: input.promotionId,
    model_id: input.modelId,
    environment: input.environment,
    candidate_deployment_id: input.candidateDeploymentId,
    previous_deployment_id: previousId,
    status: 'RELEASING',
    step: 0,
    total_steps: 0,
    percent_traffic_to_new_version: 0,
    candidate_replicas: 0,
    previous_replicas: 0,
    settings: input.settings,
    message: null,
    actor: input.actor,
    workflow_id: workflowIds.promotion(input.modelId, input.environment),
    started_at: input.startedAt!,
    updated_at: input.startedAt!,
    ended_at: null,
  };
}
