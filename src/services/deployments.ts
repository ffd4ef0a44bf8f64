/**
 * Deployments: push, look-up by ref, listing, replica bounds and logs. Knows the store and
 * the workflows; knows nothing of HTTP.
 */
import * as fs from 'node:fs';
import { archivePath, type HomePaths } from '../home';
import { readLogTail, type LogEntry } from '../logs/deployment-logs';
import { looksLikeId } from '../shared/ids';
import {
  DEFAULT_AUTOSCALING,
  type AutoscalingSettingsPatch,
  type PushOptions,
} from '../shared/schemas';
import { ConflictError, type DeploymentRecord, type ModelRecord, type Store } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';
import { conflict, invalid, notFound, unavailable } from './errors';
import { deploymentView, type DeploymentView } from './views';

/** Who is asking: the API key's name, for the audit log. */
export interface Actor {
  name: string;
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
    const existing = await store.getModel(options.model_name);
    if (existing && existing.name !== options.model_name) {
      throw conflict(`${options.model_name} is the id of model ${existing.name}; choose another model name`);
    }
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
      });
    } catch (error) {
      await store.discardDeployment(deployment.id);
      fs.rmSync(archive, { force: true });
      throw unavailable(`could not start the deploy workflow (is Temporal running?): ${(error as Error).message}`, error);
    }
    await store.appendAudit({
      model_id: model.id,
      actor: actor.name,
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
    // Until the autoscaler arrives, a running deployment runs exactly min_replica replicas,
    // except while a promotion owns its replica count (the new bounds apply after it ends).
    const running =
      deployment.status === 'ACTIVE' || deployment.status === 'UNHEALTHY' || (deployment.status === 'DEPLOYING' && deployment.desired_replicas > 0);
    const promoting = (await this.deps.store.listPromotionsInFlight(model.id)).some(
      (p) => p.candidate_deployment_id === deployment.id || p.previous_deployment_id === deployment.id,
    );
    const updated = await this.deps.store.updateDeployment(deployment.id, {
      autoscaling: settings,
      desired_replicas: running && !promoting ? settings.min_replica : undefined,
    });
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      action: 'UPDATE_AUTOSCALING',
      target: deployment.id,
      details: { ...settings },
    });
    return this.view(model, updated);
  }

  /** The last `tail` lines of a deployment's build and replica logs. */
  async logs(model: ModelRecord, ref: string, tail: number): Promise<{ deployment_id: string; entries: LogEntry[] }> {
    const deployment = await this.resolve(model, ref);
    return { deployment_id: deployment.id, entries: readLogTail(this.deps.paths.logs, deployment.id, tail) };
  }
}
