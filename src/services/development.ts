/**
 * Development deployments (`gantry push --watch`): one per model, one replica, asleep when
 * idle. A code change is unpacked as a new revision and live-reloaded into the running replica
 * (the node reloads it; the old code keeps serving if the new one fails); a requirements
 * change rebuilds it through developmentUpdateWorkflow. Knows nothing of HTTP.
 */
import * as fs from 'node:fs';
import { BuildError } from '../build/build-error';
import { unpackArchive } from '../build/builder';
import { DEFAULT_PACKAGE_LIMITS, type PackageLimits } from '../shared/constants';
import { readModelPackage, writeServerConfig } from '../build/model-package';
import { shareWithSandboxes } from '../sandbox/sandbox';
import { cachedEnvironmentKey } from '../build/python-environments';
import { archivePath, buildDir, type HomePaths } from '../home';
import { DEVELOPMENT_AUTOSCALING, type ModelConfig, type PushOptions } from '../shared/schemas';
import type { DeploymentRecord, ModelRecord, Store } from '../store/store';
import { DevelopmentUpdateAlreadyRunning, type WorkflowsClient } from '../temporal/workflows-client';
import { UPDATES_UNDER_WAY, type Actor, type DeploymentService } from './deployments';
import { conflict, invalid, notFound, unavailable } from './errors';
import type { DeploymentView } from '../shared/views';
import type { DevelopmentPushResult } from '../contracts/api';
import type { DevelopmentUpdateOutcome } from '../contracts/workflows';

/** What the development service needs. */
export interface DevelopmentServiceDeps {
  store: Store;
  paths: HomePaths;
  workflows: WorkflowsClient;
  deployments: DeploymentService;
  deployTimeoutSeconds: number;
  basePython: string;
  /** How much a pushed package may unpack to (DEFAULT_PACKAGE_LIMITS when not given). */
  packageLimits?: PackageLimits;
  /** How often observed replicas are polled while a reload is under way. */
  pollMs?: number;
}

/** How long a push that starts a rebuild waits for it to show as UPDATING. */
const STATUS_WAIT_MS = 10_000;

/** Operations on development deployments. */
export class DevelopmentService {
  /** The push each model's development deployment is taking now (the next one waits for it). */
  private readonly pushes = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: DevelopmentServiceDeps) {}

  /** The model's development deployment, if it has one. */
  async find(model: ModelRecord): Promise<DeploymentRecord | undefined> {
    return (await this.deps.store.listDeployments(model.id)).find((d) => d.kind === 'development');
  }

  /**
   * Creates the development deployment, or sends it new code. Pushes to one model's development
   * deployment are taken one at a time, in the order they arrive.
   */
  push(upload: { archiveFile: string }, options: PushOptions, actor: Actor): Promise<DevelopmentPushResult> {
    const previous = this.pushes.get(options.model_name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.pushInTurn(upload, options, actor));
    const settled = next.catch(() => undefined);
    this.pushes.set(options.model_name, settled);
    void settled.then(() => {
      if (this.pushes.get(options.model_name) === settled) this.pushes.delete(options.model_name);
    });
    return next;
  }

  private async pushInTurn(upload: { archiveFile: string }, options: PushOptions, actor: Actor): Promise<DevelopmentPushResult> {
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
    if (!existing.config || !existing.env_key) throw conflict('the development deployment has never been built; push again once it is done');
    // Revisions only go up: one that failed to load keeps its number (its archive marks it).
    let revision = existing.revision + 1;
    while (fs.existsSync(archivePath(this.deps.paths, existing.id, revision))) revision++;
    const dir = buildDir(this.deps.paths, existing.id, revision);
    let config: ModelConfig;
    try {
      await unpackArchive(upload.archiveFile, dir, this.deps.packageLimits ?? DEFAULT_PACKAGE_LIMITS);
      const pkg = readModelPackage(dir);
      writeServerConfig(dir, pkg);
      // A running sandboxed replica is shown this directory read-only when it reloads.
      shareWithSandboxes(dir);
      config = pkg.config;
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true });
      if (error instanceof BuildError) throw invalid(`the new code cannot be used: ${error.message}`, [{ field: 'archive', message: error.message }]);
      throw error;
    }
    fs.mkdirSync(this.deps.paths.archives, { recursive: true });
    fs.renameSync(upload.archiveFile, archivePath(this.deps.paths, existing.id, revision));

    const environment = await cachedEnvironmentKey(this.deps.paths.venvs, this.deps.basePython, config.requirements);
    const reload = environment.key === existing.env_key && environment.built;
    const started = Date.now();
    let update: { result: () => Promise<DevelopmentUpdateOutcome> };
    try {
      update = await this.deps.workflows.startDevelopmentUpdate(model, existing, {
        deploymentId: existing.id,
        revision,
        previous: { revision: existing.revision, envKey: existing.env_key, config: existing.config, desiredReplicas: existing.desired_replicas },
        deployTimeoutSeconds: this.deps.deployTimeoutSeconds,
        ...(reload ? { mode: 'reload' as const, config } : {}),
      });
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true });
      if (error instanceof DevelopmentUpdateAlreadyRunning) throw conflict('an update of the development deployment is under way; push again once it is done');
      throw unavailable(`could not start the development update (is Temporal running?): ${(error as Error).message}`, error);
    }
    await store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'UPDATE_DEVELOPMENT',
      target: existing.id,
      details: { revision, mode: reload ? 'reload' : 'rebuild' },
    });
    const view = async () => this.deps.deployments.view(model, (await store.getDeployment(existing.id))!);
    if (!reload) {
      // Answer once the rebuild shows as UPDATING, so that whoever waits sees it under way.
      await this.awaitStatus(existing.id, (status) => status !== existing.status);
      return { deployment: await view(), update: 'rebuilding', revision };
    }
    const outcome = await update.result();
    const seconds = (Date.now() - started) / 1000;
    if (outcome.status === 'UPDATED') return { deployment: await view(), update: outcome.woken ? 'woken' : 'reloaded', revision, seconds };
    return { deployment: await view(), update: 'failed', revision, seconds, error: outcome.message };
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
    try {
      await this.deps.workflows.startDeploy(model, deployment, { deployTimeoutSeconds: this.deps.deployTimeoutSeconds, actor: actor.name });
    } catch (error) {
      // Nothing changes: a new deployment goes again, a failed one keeps its failure.
      if (failed) await store.updateDeployment(failed.id, { status: failed.status, status_message: failed.status_message, labels: failed.labels });
      else {
        await store.discardDeployment(deployment.id);
        fs.rmSync(archivePath(this.deps.paths, deployment.id), { force: true });
      }
      throw unavailable(`could not start the deploy workflow (is Temporal running?): ${(error as Error).message}`, error);
    }
    await store.appendAudit({ model_id: model.id, actor: actor.name, source: actor.source, action: 'PUSH_DEVELOPMENT', target: deployment.id, details: {} });
    return { deployment: await this.deps.deployments.view(model, deployment), update: 'created', revision: 0 };
  }

  /** Waits (a few seconds at most) until the deployment's status satisfies `done`. */
  private async awaitStatus(deploymentId: string, done: (status: DeploymentRecord['status']) => boolean): Promise<void> {
    const deadline = Date.now() + STATUS_WAIT_MS;
    while (Date.now() < deadline) {
      const deployment = await this.deps.store.getDeployment(deploymentId);
      if (!deployment || done(deployment.status)) return;
      await new Promise((resolve) => setTimeout(resolve, this.deps.pollMs ?? 50));
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
    await this.deps.workflows.startDeploy(model, published, {
      deployTimeoutSeconds: this.deps.deployTimeoutSeconds,
      promoteTo: 'production',
      actor: actor.name,
      actorSource: actor.source,
    });
    await this.deps.store.appendAudit({
      model_id: model.id,
      actor: actor.name,
      source: actor.source,
      action: 'PROMOTE_DEVELOPMENT',
      target: published.id,
      details: { development_deployment_id: development.id, revision: development.revision },
    });
    return this.deps.deployments.view(model, published);
  }
}
