/**
 * Development deployments (`gantry push --watch`): one per model, one replica, asleep when
 * idle. A code change is unpacked as a new revision and live-reloaded into the running replica
 * (the node reloads it; the old code keeps serving if the new one fails); a requirements
 * change rebuilds it through developmentUpdateWorkflow. Knows nothing of HTTP.
 */
import * as fs from 'node:fs';
import { BuildError } from '../build/build-error';
import { unpackArchive } from '../build/builder';
import { readModelPackage, writeServerConfig } from '../build/model-package';
import { cachedEnvironmentKey } from '../build/python-environments';
import { archivePath, buildDir, type HomePaths } from '../home';
import { appendLog } from '../logs/deployment-logs';
import { DEVELOPMENT_AUTOSCALING, type PushOptions } from '../shared/schemas';
import type { DeploymentRecord, ModelRecord, ObservedReplica, Store } from '../store/store';
import type { WorkflowsClient } from '../temporal/workflows-client';
import { UPDATES_UNDER_WAY, type Actor, type DeploymentService } from './deployments';
import { conflict, invalid, notFound } from './errors';
import type { DeploymentView } from './views';

/** What a development push did. */
export interface DevelopmentPushResult {
  deployment: DeploymentView;
  /**
   * created: the first build started; reloaded: the replica runs the new code; woken: the
   * sleeping deployment started on the new code; rebuilding: requirements changed, a rebuild
   * started; failed: the new code did not load and the previous code keeps serving.
   */
  update: 'created' | 'reloaded' | 'woken' | 'rebuilding' | 'failed';
  revision: number;
  seconds?: number;
  error?: string;
}

/** What the development service needs. */
export interface DevelopmentServiceDeps {
  store: Store;
  paths: HomePaths;
  workflows: WorkflowsClient;
  deployments: DeploymentService;
  deployTimeoutSeconds: number;
  basePython: string;
  /** How often observed replicas are polled while a reload is under way. */
  pollMs?: number;
}


/** Operations on development deployments. */
export class DevelopmentService {
  constructor(private readonly deps: DevelopmentServiceDeps) {}

  /** The model's development deployment, if it has one. */
  async find(model: ModelRecord): Promise<DeploymentRecord | undefined> {
    return (await this.deps.store.listDeployments(model.id)).find((d) => d.kind === 'development');
  }

  /** Creates the development deployment, or sends it new code. */
  async push(upload: { archiveFile: string }, options: PushOptions, actor: Actor): Promise<DevelopmentPushResult> {
    const { store } = this.deps;
    const model = await this.deps.deployments.modelForPush(options.model_name);
    const existing = await this.find(model);
    if (!existing || existing.status === 'BUILD_FAILED' || existing.status === 'DEPLOY_FAILED') {
      return this.create(model, existing, upload, options, actor);
    }
    if (UPDATES_UNDER_WAY.includes(existing.status)) throw conflict(`the development deployment is ${existing.status}; push again once it is done`);
    if (existing.status === 'INACTIVE' || existing.status === 'DEACTIVATING') {
      throw conflict('the development deployment is deactivated; activate it first');
    }
    // Revisions only go up: one that failed to load keeps its number (its archive marks it).
    let revision = existing.revision + 1;
    while (fs.existsSync(archivePath(this.deps.paths, existing.id, revision))) revision++;
    const dir = buildDir(this.deps.paths, existing.id, revision);
    const log = (line: string): void => appendLog(this.deps.paths.logs, existing.id, 'gantry', [line]);
    let config;
    try {
      await unpackArchive(upload.archiveFile, dir);
      const pkg = readModelPackage(dir);
      writeServerConfig(dir, pkg);
      config = pkg.config;
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true });
      if (error instanceof BuildError) throw invalid(`the new code cannot be used: ${error.message}`, [{ field: 'archive', message: error.message }]);
      throw error;
    }
    fs.mkdirSync(this.deps.paths.archives, { recursive: true });
    fs.renameSync(upload.archiveFile, archivePath(this.deps.paths, existing.id, revision));
    await store.appendAudit({ model_id: model.id, actor: actor.name, action: 'UPDATE_DEVELOPMENT', target: existing.id, details: { revision } });

    const environment = await cachedEnvironmentKey(this.deps.paths.venvs, this.deps.basePython, config.requirements);
    if (environment.key !== existing.env_key || !environment.built || !existing.config || !existing.env_key) {
      log(`revision ${revision}: requirements changed; rebuilding (the replica restarts)`);
      // UPDATING before answering, so that whoever waits sees the rebuild under way.
      await store.updateDeployment(existing.id, { status: 'UPDATING', status_message: null });
      await this.deps.workflows.startDevelopmentUpdate(model, existing, {
        deploymentId: existing.id,
        revision,
        previous: { revision: existing.revision, envKey: existing.env_key!, config: existing.config!, desiredReplicas: existing.desired_replicas },
        deployTimeoutSeconds: this.deps.deployTimeoutSeconds,
      });
      return { deployment: await this.deps.deployments.view(model, (await store.getDeployment(existing.id))!), update: 'rebuilding', revision };
    }

    const asleep = existing.desired_replicas === 0;
    const started = Date.now();
    log(`revision ${revision}: ${asleep ? 'waking the replica on the new code' : 'live-reloading the replica'}`);
    await store.updateDeployment(existing.id, { revision, config, status: asleep ? 'WAKING_UP' : 'UPDATING', status_message: null, desired_replicas: asleep ? 1 : undefined });
    const outcome = await this.awaitRevision(existing.id, revision);
    const seconds = (Date.now() - started) / 1000;
    if (outcome.ok) {
      await store.updateDeployment(existing.id, { status: 'ACTIVE', status_message: null });
      log(`revision ${revision} serves (${seconds.toFixed(2)} s)`);
      this.releaseOldRevisions(existing.id, revision);
      const view = await this.deps.deployments.view(model, (await store.getDeployment(existing.id))!);
      return { deployment: view, update: asleep ? 'woken' : 'reloaded', revision, seconds };
    }
    // The replica keeps the previous revision: so does the record, so a restart runs it too.
    await store.updateDeployment(existing.id, {
      revision: existing.revision,
      config: existing.config,
      status: 'ACTIVE',
      status_message: `revision ${revision} failed to load, revision ${existing.revision} serves: ${outcome.error}`,
    });
    log(`revision ${revision} failed to load; revision ${existing.revision} keeps serving: ${outcome.error}`);
    const view = await this.deps.deployments.view(model, (await store.getDeployment(existing.id))!);
    return { deployment: view, update: 'failed', revision, seconds, error: outcome.error };
  }

  private async create(
    model: ModelRecord,
    failed: DeploymentRecord | undefined,
    upload: { archiveFile: string },
    options: PushOptions,
    actor: Actor,
  ): Promise<DevelopmentPushResult> {
    const { store } = this.deps;
    const deployment = failed
      ? await store.updateDeployment(failed.id, { status: 'BUILDING', status_message: null, labels: options.labels, revision: 0, desired_replicas: 0 })
      : await store.createDeployment({ model_id: model.id, name: 'development', kind: 'development', labels: options.labels, autoscaling: DEVELOPMENT_AUTOSCALING });
    fs.mkdirSync(this.deps.paths.archives, { recursive: true });
    fs.renameSync(upload.archiveFile, archivePath(this.deps.paths, deployment.id));
    await this.deps.workflows.startDeploy(model, deployment, { deployTimeoutSeconds: this.deps.deployTimeoutSeconds, actor: actor.name });
    await store.appendAudit({ model_id: model.id, actor: actor.name, action: 'PUSH_DEVELOPMENT', target: deployment.id, details: {} });
    return { deployment: await this.deps.deployments.view(model, deployment), update: 'created', revision: 0 };
  }

  /** Waits until a replica runs the revision, or it failed to load, or the deploy timeout passes. */
  private async awaitRevision(deploymentId: string, revision: number): Promise<{ ok: true } | { ok: false; error: string }> {
    const deadline = Date.now() + this.deps.deployTimeoutSeconds * 1000;
    for (;;) {
      const replicas: ObservedReplica[] = await this.deps.store.listReplicas(deploymentId);
      if (replicas.some((r) => r.revision >= revision && r.state === 'READY')) return { ok: true };
      const failure = replicas.find((r) => r.reload_error?.revision === revision) ?? replicas.find((r) => r.revision >= revision && r.last_error);
      if (failure) return { ok: false, error: failure.reload_error?.error ?? failure.last_error ?? 'the new code failed to load' };
      if (Date.now() > deadline) return { ok: false, error: `no replica ran revision ${revision} within ${this.deps.deployTimeoutSeconds} s` };
      await new Promise((resolve) => setTimeout(resolve, this.deps.pollMs ?? 50));
    }
  }

  /** Removes the unpacked code and archives of revisions two or more behind the current one. */
  private releaseOldRevisions(deploymentId: string, current: number): void {
    for (let old = current - 2; old >= 1; old--) {
      const dir = buildDir(this.deps.paths, deploymentId, old);
      if (!fs.existsSync(dir) && !fs.existsSync(archivePath(this.deps.paths, deploymentId, old))) break;
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(archivePath(this.deps.paths, deploymentId, old), { force: true });
    }
  }

  /** Keeps the development deployment awake while a watch session is connected. */
  async heartbeat(model: ModelRecord): Promise<DeploymentView> {
    const deployment = await this.find(model);
    if (!deployment) throw notFound(`model ${model.name} has no development deployment`);
    const updated = await this.deps.store.updateDeployment(deployment.id, { watch_heartbeat_at: new Date().toISOString() });
    return this.deps.deployments.view(model, updated);
  }

  /**
   * Publishes the development code as a new deployment and promotes it to production through
   * the normal deploy and promotion workflows.
   */
  async promote(model: ModelRecord, actor: Actor): Promise<DeploymentView> {
    const development = await this.find(model);
    if (!development) throw notFound(`model ${model.name} has no development deployment`);
    if (!development.config || UPDATES_UNDER_WAY.includes(development.status) || development.status.endsWith('FAILED')) {
      throw conflict(`the development deployment is ${development.status}; promote it once it serves`);
    }
    const source = archivePath(this.deps.paths, development.id, development.revision);
    if (!fs.existsSync(source)) throw conflict(`the code of revision ${development.revision} is no longer kept; push it again`);
    const published = await this.deps.store.createDeployment({
      model_id: model.id,
      kind: 'published',
      labels: development.labels,
      autoscaling: { ...development.autoscaling, min_replica: 1, max_replica: 1 },
    });
    fs.copyFileSync(source, archivePath(this.deps.paths, published.id));
    await this.deps.workflows.startDeploy(model, published, { deployTimeoutSeconds: this.deps.deployTimeoutSeconds, promoteTo: 'production', actor: actor.name });
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      action: 'PROMOTE_DEVELOPMENT',
      target: published.id,
      details: { development_deployment_id: development.id, revision: development.revision },
    });
    return this.deps.deployments.view(model, published);
  }
}
