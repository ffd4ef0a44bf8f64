/**
 * Deployments: push, look-up by ref, listing, replica bounds and logs. Knows the store and
 * the workflows; knows nothing of HTTP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { archivePath, type HomePaths } from '../home';
import type { ApiClientSource, DeploymentLogs, LogEntry } from '../shared/views';
import { followLog, readLogTail } from '../logs/deployment-logs';
import { looksLikeId } from '../shared/ids';
import { DEFAULT_AUTOSCALING, type AutoscalingSettingsPatch, type DeploymentUpdate, type PushOptions } from '../shared/schemas';
import { ConflictError, type DeploymentRecord, type ModelRecord, promotionInvolves, type Store, wakePatch } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';
import { conflict, invalid, notFound, unavailable } from './errors';
import { deploymentView } from './views';
import type { DeploymentView } from '../shared/views';

/** Statuses in which a deploy or update of the deployment is still under way. */
export const UPDATES_UNDER_WAY: readonly DeploymentRecord['status'][] = ['BUILDING', 'DEPLOYING', 'UPDATING'];

/** Who is asking: the API key's name, for the audit log. */
export interface Actor {
  name: string;
  /** How the call reached the API: the CLI, the dashboard, or any other client (absent for Gantry's own actors). */
  source?: ApiClientSource;
}

/** What the deployment service needs. */
export interface DeploymentServiceDeps {
  store: Store;
  paths: HomePaths;
  workflows: WorkflowsClient;
  deployTimeoutSeconds: number;
}

/** Operations on deployments. */
export class DeploymentService {
  constructor(private readonly deps: DeploymentServiceDeps) {}

  /** A model by id or name, or not_found. */
  async requireModel(idOrName: string): Promise<ModelRecord> {
    const model = await this.deps.store.getModel(idOrName);
    if (!model) throw notFound(`model ${idOrName} not found`);
    return model;
  }

  /** A live deployment of the model by id, name, `production` or `development`, or not_found. */
  async resolve(model: ModelRecord, ref: string): Promise<DeploymentRecord> {
    const { store } = this.deps;
    let deployment: DeploymentRecord | undefined;
    if (ref === 'production') {
      const env = await store.getEnvironment(model.id, 'production');
      if (!env?.current_deployment_id) throw notFound(`model ${model.name} has no production deployment yet`);
      deployment = await store.getDeployment(env.current_deployment_id);
    } else if (ref === 'development') {
      deployment = (await store.listDeployments(model.id)).find((d) => d.kind === 'development');
      if (!deployment) throw notFound(`model ${model.name} has no development deployment`);
    } else {
      if (looksLikeId(ref)) deployment = await store.getDeployment(ref);
      if (!deployment || deployment.model_id !== model.id) deployment = await store.findDeploymentByName(model.id, ref);
    }
    if (!deployment || deployment.model_id !== model.id || deployment.deleted_at) {
      throw notFound(`deployment ${ref} not found for model ${model.name}`);
    }
    return deployment;
  }

  /** The model a push names, if it exists; refuses a name that is another model's id. */
  private async existingModelNamed(name: string): Promise<ModelRecord | undefined> {
    const existing = await this.deps.store.getModel(name);
    if (existing && existing.name !== name) throw conflict(`${name} is the id of model ${existing.name}; choose another model name`);
    return existing;
  }

  /** The model a push goes to, created when it does not exist yet. */
  async modelForPush(name: string): Promise<ModelRecord> {
    return (await this.existingModelNamed(name)) ?? this.deps.store.findOrCreateModel(name);
  }

  /** A model's live deployments, newest first. */
  listOf(model: ModelRecord): Promise<DeploymentRecord[]> {
    return this.deps.store.listDeployments(model.id);
  }

  /** Shows deployments with their environments and replica counts. */
  async views(model: ModelRecord, deployments: DeploymentRecord[]): Promise<DeploymentView[]> {
    const [environments, replicas] = await Promise.all([this.deps.store.listEnvironments(model.id), this.deps.store.listReplicas()]);
    return deployments.map((deployment) => deploymentView(deployment, environments, replicas));
  }

  /** Shows one deployment. */
  async view(model: ModelRecord, deployment: DeploymentRecord): Promise<DeploymentView> {
    return (await this.views(model, [deployment]))[0]!;
  }

  /**
   * Creates a published deployment from an uploaded archive (moved into GANTRY_HOME) and
   * starts its deploy workflow. Nothing is left behind when it refuses.
   */
  async push(upload: { archiveFile: string }, options: PushOptions, actor: Actor): Promise<DeploymentView> {
    const { store } = this.deps;
    const existing = await this.existingModelNamed(options.model_name);
    if (existing && options.deployment_name && (await store.findDeploymentByName(existing.id, options.deployment_name))) {
      throw conflict(`model ${existing.name} already has a deployment named ${options.deployment_name}`);
    }
    if (options.environment && options.environment !== 'production') {
      if (!existing || !(await store.getEnvironment(existing.id, options.environment))) {
        throw notFound(`environment ${options.environment} not found for model ${options.model_name}; create it first`);
      }
    }
    const model = existing ?? (await store.findOrCreateModel(options.model_name));
    let deployment: DeploymentRecord;
    try {
      deployment = await store.createDeployment({
        model_id: model.id,
        name: options.deployment_name,
        kind: 'published',
        labels: options.labels,
        autoscaling: DEFAULT_AUTOSCALING,
      });
    } catch (error) {
      if (error instanceof ConflictError) throw conflict(`model ${model.name}: ${error.message}`);
      throw error;
    }
    const archive = archivePath(this.deps.paths, deployment.id);
    fs.mkdirSync(this.deps.paths.archives, { recursive: true });
    fs.renameSync(upload.archiveFile, archive);
    try {
      await this.deps.workflows.startDeploy(model, deployment, {
        deployTimeoutSeconds: this.deps.deployTimeoutSeconds,
        promoteTo: options.environment,
        actor: actor.name,
        actorSource: actor.source,
      });
    } catch (error) {
      await store.discardDeployment(deployment.id);
      fs.rmSync(archive, { force: true });
      throw unavailable(`could not start the deploy workflow (is Temporal running?): ${(error as Error).message}`, error);
    }
    await store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'PUSH',
      target: deployment.id,
      details: { deployment_name: deployment.name, labels: deployment.labels, ...(options.environment ? { promote_to: options.environment } : {}) },
    });
    return this.view(model, deployment);
  }

  /** Changes a published deployment's replica bounds; a running deployment follows at once. */
  async updateAutoscaling(model: ModelRecord, ref: string, patch: AutoscalingSettingsPatch, actor: Actor): Promise<DeploymentView> {
    const deployment = await this.resolve(model, ref);
    if (deployment.kind === 'development') {
      throw conflict('a development deployment always runs one replica; its autoscaling settings cannot change');
    }
    const settings = { ...deployment.autoscaling, ...patch };
    if (settings.min_replica > settings.max_replica) {
      throw invalid(`min_replica (${settings.min_replica}) must not exceed max_replica (${settings.max_replica})`, [
        { field: 'min_replica', message: 'must not exceed max_replica' },
      ]);
    }
    // New bounds apply at once to a running deployment (the autoscaler moves within them),
    // except while a promotion owns its replica count (they apply after it ends).
    const running = deployment.status === 'ACTIVE' || deployment.status === 'UNHEALTHY' || (deployment.status === 'DEPLOYING' && deployment.desired_replicas > 0);
    const promoting = await this.promotionInvolving(deployment);
    const clamped = Math.min(settings.max_replica, Math.max(settings.min_replica, deployment.desired_replicas, running ? 1 : 0));
    const updated = await this.deps.store.updateDeployment(deployment.id, {
      autoscaling: settings,
      desired_replicas: running && !promoting ? clamped : undefined,
    });
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'UPDATE_AUTOSCALING',
      target: deployment.id,
      details: { ...settings },
    });
    return this.view(model, updated);
  }

  /** A model's live deployments whose labels match every filter, newest first. */
  async listMatching(model: ModelRecord, filters: { key: string; value: string }[]): Promise<DeploymentRecord[]> {
    const all = await this.deps.store.listDeployments(model.id);
    return all.filter((d) => filters.every((f) => d.labels[f.key] === f.value));
  }

  /** The in-flight promotion that controls this deployment's replicas, if any. */
  private async promotionInvolving(deployment: DeploymentRecord) {
    return (await this.deps.store.listPromotionsInFlight(deployment.model_id)).find((p) => promotionInvolves(p, deployment.id));
  }

  /** Renames a published deployment and/or replaces its labels. */
  async update(model: ModelRecord, ref: string, update: DeploymentUpdate, actor: Actor): Promise<DeploymentView> {
    const deployment = await this.resolve(model, ref);
    if (update.name !== undefined && deployment.kind === 'development') {
      throw conflict('the development deployment cannot be renamed');
    }
    let updated: DeploymentRecord;
    try {
      updated = await this.deps.store.updateDeployment(deployment.id, { name: update.name, labels: update.labels });
    } catch (error) {
      if (error instanceof ConflictError) throw conflict(`model ${model.name}: ${error.message}`);
      throw error;
    }
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'UPDATE_DEPLOYMENT',
      target: deployment.id,
      details: { ...(update.name !== undefined ? { name: { from: deployment.name, to: update.name } } : {}), ...(update.labels ? { labels: update.labels } : {}) },
    });
    return this.view(model, updated);
  }

  /**
   * Deactivates a deployment: out of routing (its paths and environments answer 404), replicas
   * drained to zero (DEACTIVATING, then INACTIVE once the node has none). Listed still.
   */
  async deactivate(model: ModelRecord, ref: string, actor: Actor): Promise<DeploymentView> {
    const deployment = await this.resolve(model, ref);
    const promotion = await this.promotionInvolving(deployment);
    if (promotion) throw conflict(`deployment ${deployment.name} is part of promotion ${promotion.id} of ${promotion.environment}, which is in flight`);
    if (deployment.status === 'INACTIVE' || deployment.status === 'DEACTIVATING') return this.view(model, deployment);
    if (UPDATES_UNDER_WAY.includes(deployment.status)) {
      throw conflict(`deployment ${deployment.name} is ${deployment.status}; deactivate it once that is done`);
    }
    const updated = await this.deps.store.updateDeployment(deployment.id, { status: 'DEACTIVATING', status_message: null, desired_replicas: 0 });
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'DEACTIVATE',
      target: deployment.id,
      details: { previous_status: deployment.status },
    });
    return this.view(model, updated);
  }

  /** Activates a deactivated deployment: max(min_replica, 1) replicas, WAKING_UP until one is ready, then ACTIVE. */
  async activate(model: ModelRecord, ref: string, actor: Actor): Promise<DeploymentView> {
    const deployment = await this.resolve(model, ref);
    if (deployment.status !== 'INACTIVE' && deployment.status !== 'DEACTIVATING') {
      throw conflict(`deployment ${deployment.name} is ${deployment.status}, not deactivated`);
    }
    if (!deployment.config || !deployment.env_key) throw conflict(`deployment ${deployment.name} was never built; push it again`);
    const updated = await this.deps.store.updateDeployment(deployment.id, wakePatch(deployment));
    await this.deps.store.appendAudit({ model_id: model.id, actor: actor.name, source: actor.source, action: 'ACTIVATE', target: deployment.id, details: {} });
    return this.view(model, updated);
  }

  /**
   * Deletes a deployment that no environment points at and no promotion controls: its
   * replicas stop, its paths answer 404, it leaves every listing, its archive is removed (the
   * node removes its build once its replicas are gone) and its usage stays in the usage log.
   */
  async delete(model: ModelRecord, ref: string, actor: Actor): Promise<void> {
    const deployment = await this.resolve(model, ref);
    const environments = (await this.deps.store.listEnvironments(model.id)).filter((env) => env.current_deployment_id === deployment.id);
    if (environments.some((env) => env.name === 'production')) {
      throw conflict(`deployment ${deployment.name} is production's current deployment: promote another deployment to production first`);
    }
    if (environments.length > 0) {
      throw conflict(`deployment ${deployment.name} is the current deployment of ${environments.map((e) => e.name).join(', ')}: promote another deployment there first`);
    }
    const promotion = await this.promotionInvolving(deployment);
    if (promotion) throw conflict(`deployment ${deployment.name} is part of promotion ${promotion.id} of ${promotion.environment}, which is in flight`);
    if (deployment.status === 'BUILDING' || deployment.status === 'DEPLOYING') {
      throw conflict(`deployment ${deployment.name} is ${deployment.status}; delete it once its deploy has ended`);
    }
    await this.deps.store.updateDeployment(deployment.id, { deleted_at: new Date().toISOString(), desired_replicas: 0 });
    // Its archive, and those of every development revision it had.
    for (const file of fs.existsSync(this.deps.paths.archives) ? fs.readdirSync(this.deps.paths.archives) : []) {
      if (file === `${deployment.id}.tar.gz` || file.startsWith(`${deployment.id}.r`)) fs.rmSync(path.join(this.deps.paths.archives, file), { force: true });
    }
    await this.deps.store.appendAudit({ model_id: model.id, actor: actor.name, source: actor.source, action: 'DELETE', target: deployment.id, details: { name: deployment.name } });
  }

  /** The last `tail` lines of a deployment's build and replica logs. */
  async logs(model: ModelRecord, ref: string, tail: number): Promise<DeploymentLogs> {
    const deployment = await this.resolve(model, ref);
    return { deployment_id: deployment.id, entries: readLogTail(this.deps.paths.logs, deployment.id, tail) };
  }

  /** Hands over the last `tail` entries of a deployment's log, then every new one; returns a stop function. */
  followLogs(deployment: DeploymentRecord, tail: number, onEntries: (entries: LogEntry[]) => void): () => void {
    return followLog(this.deps.paths.logs, deployment.id, tail, onEntries);
  }
}
