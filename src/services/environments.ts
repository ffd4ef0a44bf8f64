/**
 * Environments: production (always there) and custom ones, their promotion settings, and
 * what each serves. Knows the store and the workflows; knows nothing of HTTP.
 */
import { PRODUCTION } from '../shared/constants';
import { DEFAULT_PROMOTION_SETTINGS, describeIssues, promotionSettingsSchema, type PromotionSettings, type PromotionSettingsPatch } from '../shared/schemas';
import { ConflictError, liveNodes, routeKey, type EnvironmentRecord, type ModelRecord, type Store } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';
import type { Actor, DeploymentService } from './deployments';
import { conflict, invalid, notFound, ServiceError } from './errors';
import type { PromotionService } from './promotions';
import type { DeploymentView, EnvironmentView } from '../shared/views';

/** Applies a partial change to settings and checks the result (exactly one of surge/unavailable, ranges). */
export function mergePromotionSettings(current: PromotionSettings, patch: PromotionSettingsPatch | undefined): PromotionSettings {
  const merged = {
    ...current,
    ...patch,
    rolling_deploy_config: { ...current.rolling_deploy_config, ...patch?.rolling_deploy_config },
  };
  const parsed = promotionSettingsSchema.safeParse(merged);
  if (!parsed.success) {
    const details = describeIssues(parsed.error).map((d) => ({ ...d, field: `promotion_settings.${d.field}` }));
    throw invalid(`invalid promotion_settings: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
  }
  return parsed.data;
}

/** What the environment service needs. */
export interface EnvironmentServiceDeps {
  store: Store;
  workflows: WorkflowsClient;
  deployments: DeploymentService;
  promotions: PromotionService;
}

/** How long deleting an environment waits for its force-cancelled promotion to end. */
const DELETE_WAIT_MS = 120_000;
/** How long deleting an environment waits for the gateways to stop serving it. */
const ROUTE_GONE_WAIT_MS = 10_000;

/** Operations on environments. */
export class EnvironmentService {
  constructor(private readonly deps: EnvironmentServiceDeps) {}

  /** An environment of the model, or not_found. */
  async require(model: ModelRecord, name: string): Promise<EnvironmentRecord> {
    const environment = await this.deps.store.getEnvironment(model.id, name);
    if (!environment) throw notFound(`environment ${name} not found for model ${model.name}`);
    return environment;
  }

  /** Shows an environment with its current and candidate deployments and its in-flight promotion. */
  async view(model: ModelRecord, environment: EnvironmentRecord): Promise<EnvironmentView> {
    const promotionRecord = await this.deps.promotions.inFlight(model, environment.name);
    const promotion = promotionRecord ? await this.deps.promotions.view(promotionRecord) : null;
    const show = async (id: string | null | undefined): Promise<DeploymentView | null> => {
      const deployment = id ? await this.deps.store.getDeployment(id) : undefined;
      return deployment ? this.deps.deployments.view(model, deployment) : null;
    };
    return {
      model_id: model.id,
      name: environment.name,
      promotion_settings: environment.promotion_settings,
      current_deployment: await show(environment.current_deployment_id),
      candidate_deployment: await show(promotion?.candidate_deployment_id),
      in_progress_promotion: promotion,
      created_at: environment.created_at,
      updated_at: environment.updated_at,
    };
  }

  /** Every environment of the model, production first. */
  async list(model: ModelRecord): Promise<EnvironmentView[]> {
    const environments = await this.deps.store.listEnvironments(model.id);
    return Promise.all(environments.map((environment) => this.view(model, environment)));
  }

  /** Creates a custom environment with (partial) promotion settings over the defaults. */
  async create(model: ModelRecord, name: string, settings: PromotionSettingsPatch | undefined, actor: Actor): Promise<EnvironmentView> {
    const merged = mergePromotionSettings(DEFAULT_PROMOTION_SETTINGS, settings);
    let environment: EnvironmentRecord;
    try {
      environment = await this.deps.store.createEnvironment(model.id, name, merged);
    } catch (error) {
      if (error instanceof ConflictError) throw conflict(`model ${model.name} already has an environment named ${name}`);
      throw error;
    }
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'CREATE_ENVIRONMENT',
      target: name,
      details: { promotion_settings: merged },
    });
    return this.view(model, environment);
  }

  /** Changes promotion settings; a promotion in flight keeps the settings it started with. */
  async updateSettings(model: ModelRecord, name: string, patch: PromotionSettingsPatch, actor: Actor): Promise<EnvironmentView> {
    const environment = await this.require(model, name);
    const merged = mergePromotionSettings(environment.promotion_settings, patch);
    const updated = await this.deps.store.updatePromotionSettings(model.id, name, merged);
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'UPDATE_PROMOTION_SETTINGS',
      target: name,
      details: { promotion_settings: merged },
    });
    return this.view(model, updated);
  }

  /** Waits (a few seconds at most) until no live node's gateway serves the environment's route. */
  private async awaitRouteGone(modelId: string, name: string): Promise<void> {
    const key = routeKey(modelId, name);
    const deadline = Date.now() + ROUTE_GONE_WAIT_MS;
    for (;;) {
      const nodes = await this.deps.store.listNodes();
      const serving = liveNodes(nodes).filter((node) => key in node.applied_routes);
      if (serving.length === 0 || Date.now() > deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Deletes a custom environment; a promotion in flight is force-cancelled first. Production cannot be deleted. */
  async delete(model: ModelRecord, name: string, actor: Actor): Promise<void> {
    if (name === PRODUCTION) throw conflict('the production environment cannot be deleted');
    await this.require(model, name);
    const inFlight = await this.deps.promotions.inFlight(model, name);
    if (inFlight) {
      try {
        await this.deps.promotions.act(model, name, 'force_cancel', actor, 0);
      } catch (error) {
        // Refused because it is completing or rolling back, or its workflow is gone (the repair
        // loop ends its record): either way it ends by itself; wait for that below.
        if (!(error instanceof ServiceError) || error.kind === 'unavailable') throw error;
      }
      const deadline = Date.now() + DELETE_WAIT_MS;
      while (!(await this.deps.store.getPromotion(inFlight.id))?.ended_at) {
        if (Date.now() > deadline) throw conflict(`the promotion of ${name} did not finish cancelling in time; try again`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    await this.deps.store.deleteEnvironment(model.id, name);
    await this.awaitRouteGone(model.id, name);
    await this.deps.store.appendAudit({ model_id: model.id, actor: actor.name, source: actor.source, action: 'DELETE_ENVIRONMENT', target: name, details: {} });
  }
}
