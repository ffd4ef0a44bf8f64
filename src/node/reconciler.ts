/**
 * The node's reconciler: reads desired replica counts from the store, hands them to the
 * runtime, and keeps a deployment's ACTIVE/UNHEALTHY status true to what is observed.
 * Level-triggered: it can run any number of times, after any change or none.
 */
import * as fs from 'node:fs';
import { collectPythonEnvironments, environmentKeyOfPython, type EnvironmentRetention } from '../build/environment-collection';
import { environmentDir, environmentPython } from '../build/python-environments';
import * as path from 'node:path';
import { buildDir, deploymentOfBuildDir, type HomePaths } from '../home';
import { removeDeploymentLogs } from '../logs/deployment-logs';
import type { DeploymentRecord, Store } from '../store/store';
import { describeError } from './retried-task';
import { CoalescedRun } from '../shared/coalesced-run';
import { declaredSecretNames } from '../shared/secrets';
import { describeShortfall, type DesiredReplicas, type Runtime } from './runtime/runtime';
import { type Sandbox, sandboxUid } from '../sandbox/sandbox';

/** The status messages the host replica cap writes (and so may clear). */
const CAP_MESSAGE = /^\d+ of \d+ replicas: host replica cap GANTRY_MAX_REPLICAS=\d+ reached$/;

/** An ACTIVE deployment with no ready replica for this long is marked UNHEALTHY. */
export const UNHEALTHY_AFTER_MS = 10_000;

/** What the reconciler works with. */
export interface ReconcilerDeps {
  store: Store;
  runtime: Pick<Runtime, 'reconcile' | 'routableReplicas' | 'hasReplicas' | 'replicaShortfalls' | 'pythonsInUse'>;
  paths: HomePaths;
  log?: (line: string) => void;
  /** How long unused Python environments and dead builds' scratch folders are kept; never collected when not given. */
  environmentRetention?: EnvironmentRetention;
  /** How often a pass collects environments (default every 10 minutes, and on the first pass). */
  collectEnvironmentsEveryMs?: number;
  /** The sandbox replicas run in, each model as its own uid (undefined: model isolation is off or unavailable). */
  sandbox?: Sandbox;
}

/** How often the reconciler collects unused Python environments by default. */
export const COLLECT_ENVIRONMENTS_EVERY_MS = 10 * 60_000;

/** Whether a deployment's replicas should run on this node, and how to start them (the reconciler adds the sandbox). */
export function desiredReplicasOf(deployment: DeploymentRecord, paths: HomePaths): DesiredReplicas | undefined {
  if (deployment.deleted_at || deployment.desired_replicas <= 0) return undefined;
  if (!deployment.config || !deployment.env_key) return undefined; // not built yet
  return {
    replicas: deployment.desired_replicas,
    spec: {
      deploymentId: deployment.id,
      kind: deployment.kind,
      python: environmentPython(environmentDir(paths.venvs, deployment.env_key)),
      packageDir: buildDir(paths, deployment.id, deployment.revision),
      revision: deployment.revision,
      environment: deployment.config.environment_variables,
      secretNames: declaredSecretNames(deployment.config),
      logsDir: paths.logs,
    },
  };
}

/** Reconciles the store's desired state into this node's runtime. */
export class Reconciler {
  private readonly passes = new CoalescedRun(
    () => this.pass(),
    (error) => this.deps.log?.(`node: reconcile failed (tried again on the next pass): ${describeError(error)}`),
  );
  /** Deployment id → since when it has had no ready replica while ACTIVE. */
  private readonly unreadySince = new Map<string, number>();
  /** When the last environment collection ran (0: not yet). */
  private lastCollection = 0;
  /** Model id → its sandbox uid (allocated once by the store, never changed). */
  private readonly sandboxUids = new Map<string, number>();

  constructor(private readonly deps: ReconcilerDeps) {}

  /** Runs one pass (coalescing calls that arrive during a pass into one more). */
  run(): Promise<void> {
    return this.passes.run();
  }

  private async pass(): Promise<void> {
    const deployments = await this.deps.store.listLiveDeployments();
    const desired: DesiredReplicas[] = [];
    for (const deployment of deployments) {
      const wanted = desiredReplicasOf(deployment, this.deps.paths);
      if (!wanted) continue;
      if (this.deps.sandbox) wanted.spec.sandbox = await this.sandboxOf(deployment.model_id, this.deps.sandbox);
      desired.push(wanted);
    }
    this.deps.runtime.reconcile(desired);
    await this.reportReplicaCap(deployments);
    await this.updateHealthStatuses(deployments);
    await this.settleTransitions(deployments);
    await this.releaseDeletedBuilds(deployments);
    await this.removeDeletedLogs(deployments);
    this.collectEnvironments(deployments);
  }

  /**
   * Removes Python environments no deployment that is not deleted and no replica here uses
   * (after their retention) and the scratch folders of builds that died, at most once per
   * `collectEnvironmentsEveryMs`.
   */
  private collectEnvironments(live: DeploymentRecord[]): void {
    const retention = this.deps.environmentRetention;
    if (!retention) return; // collection not configured for this node
    const now = Date.now();
    if (this.lastCollection !== 0 && now - this.lastCollection < (this.deps.collectEnvironmentsEveryMs ?? COLLECT_ENVIRONMENTS_EVERY_MS)) return;
    this.lastCollection = now;
    const venvs = this.deps.paths.venvs;
    const inUse = new Set(live.flatMap((d) => (d.env_key ? [d.env_key] : [])));
    for (const python of this.deps.runtime.pythonsInUse()) {
      const key = environmentKeyOfPython(venvs, python);
      if (key) inUse.add(key);
    }
    const removed = collectPythonEnvironments(venvs, inUse, retention, now);
    for (const key of removed.environments) this.deps.log?.(`removed Python environment ${key}: unused for ${Math.round(retention.unusedForMs / 1000)} s`);
    for (const name of removed.partials) this.deps.log?.(`removed ${name}: the scratch folder of a build that did not finish`);
  }

  /** The sandbox a model's replicas run in, as the model's uid. */
  private async sandboxOf(modelId: string, sandbox: Sandbox): Promise<{ sandbox: Sandbox; uid: number }> {
    let uid = this.sandboxUids.get(modelId);
    if (uid === undefined) {
      uid = sandboxUid(sandbox, await this.deps.store.sandboxUserOffset(modelId));
      this.sandboxUids.set(modelId, uid);
    }
    return { sandbox, uid };
  }

  /**
   * Removes the log files of deleted deployments once no replica of theirs runs here (so no
   * replica's last lines create them again); their usage stays in the usage log.
   */
  private async removeDeletedLogs(live: DeploymentRecord[]): Promise<void> {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.deps.paths.logs);
    } catch {
      return;
    }
    const liveIds = new Set(live.map((d) => d.id));
    const ids = new Set(entries.filter((entry) => entry.endsWith('.jsonl') || entry.endsWith('.rotating')).map((entry) => entry.split('.')[0]!));
    for (const id of ids) {
      if (liveIds.has(id) || this.deps.runtime.hasReplicas(id)) continue;
      const deployment = await this.deps.store.getDeployment(id);
      if (deployment?.deleted_at) {
        const removed = removeDeploymentLogs(this.deps.paths.logs, id);
        this.deps.log?.(`removed ${removed} log file${removed === 1 ? '' : 's'} of deleted deployment ${id}`);
      }
    }
  }

  /** DEACTIVATING → INACTIVE once no node runs a replica of it; WAKING_UP → ACTIVE once one is ready. */
  private async settleTransitions(deployments: DeploymentRecord[]): Promise<void> {
    for (const deployment of deployments) {
      if (deployment.status === 'DEACTIVATING') {
        const replicas = await this.deps.store.listReplicas(deployment.id);
        if (replicas.length === 0 && deployment.desired_replicas === 0) {
          await this.deps.store.setStatusIf(deployment.id, 'DEACTIVATING', 'INACTIVE', null);
        }
      } else if (deployment.status === 'WAKING_UP' && this.deps.runtime.routableReplicas(deployment.id).length > 0) {
        await this.deps.store.setStatusIf(deployment.id, 'WAKING_UP', 'ACTIVE', null);
      }
    }
  }

  /** Removes the unpacked builds of deleted deployments once no replica of theirs runs here. */
  private async releaseDeletedBuilds(live: DeploymentRecord[]): Promise<void> {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.deps.paths.builds);
    } catch {
      return;
    }
    const liveIds = new Set(live.map((d) => d.id));
    for (const entry of entries) {
      const id = deploymentOfBuildDir(entry);
      if (liveIds.has(id) || this.deps.runtime.hasReplicas(id)) continue;
      const deployment = await this.deps.store.getDeployment(id);
      if (deployment?.deleted_at) {
        fs.rmSync(path.join(this.deps.paths.builds, entry), { recursive: true, force: true });
        this.deps.log?.(`released the build ${entry} of deleted deployment ${id}`);
      }
    }
  }

  /**
   * Says in a deployment's status message that the host replica cap holds some of its replicas
   * back ("2 of 5 replicas: host replica cap GANTRY_MAX_REPLICAS=4 reached"), and clears that
   * message once it no longer does. A message someone else wrote is left alone.
   */
  private async reportReplicaCap(deployments: DeploymentRecord[]): Promise<void> {
    const shortfalls = this.deps.runtime.replicaShortfalls();
    for (const deployment of deployments) {
      const shortfall = shortfalls.get(deployment.id);
      const current = deployment.status_message;
      const ours = current === null || CAP_MESSAGE.test(current);
      if (!ours) continue;
      const message = shortfall ? describeShortfall(shortfall) : null;
      if (message !== current) await this.deps.store.updateDeployment(deployment.id, { status_message: message });
    }
  }

  /** ACTIVE → UNHEALTHY when nothing has been ready for a while; UNHEALTHY → ACTIVE when something is. */
  private async updateHealthStatuses(deployments: DeploymentRecord[]): Promise<void> {
    const now = Date.now();
    for (const deployment of deployments) {
      if (deployment.status !== 'ACTIVE' && deployment.status !== 'UNHEALTHY') continue;
      const ready = this.deps.runtime.routableReplicas(deployment.id).length;
      if (ready > 0 || deployment.desired_replicas === 0) {
        this.unreadySince.delete(deployment.id);
        if (deployment.status === 'UNHEALTHY' && (await this.deps.store.setStatusIf(deployment.id, 'UNHEALTHY', 'ACTIVE', null))) {
          this.deps.log?.(`deployment ${deployment.id} is serving again: ACTIVE`);
        }
        continue;
      }
      const since = this.unreadySince.get(deployment.id) ?? now;
      this.unreadySince.set(deployment.id, since);
      if (deployment.status === 'ACTIVE' && now - since >= UNHEALTHY_AFTER_MS) {
        const message = `no replica has been ready for ${Math.round((now - since) / 1000)} s`;
        if (await this.deps.store.setStatusIf(deployment.id, 'ACTIVE', 'UNHEALTHY', message)) {
          this.deps.log?.(`deployment ${deployment.id} has no ready replica: UNHEALTHY`);
        }
      }
    }
  }
}
