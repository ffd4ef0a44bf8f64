/**
 * A Gantry home with one deployment of a model fixture, built without pip: the package is
 * copied into builds/<id> with its gantry-config.json, and its "environment" is this
 * machine's Python (the model server needs only the standard library). The node runs real
 * model-server replicas from it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../../src/auth/key-hash';
import { environmentDir, environmentPython } from '../../../src/build/python-environments';
import { readModelPackage, writeServerConfig } from '../../../src/build/model-package';
import { buildDir, homePaths, type HomePaths } from '../../../src/home';
import { Node, type NodeOptions } from '../../../src/node/node';
import { PROJECT_ROOT } from '../../../src/shared/project-paths';
import { DEFAULT_AUTOSCALING, type DeploymentStatus } from '../../../src/shared/schemas';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store';

/** The API key every local deployment accepts. */
export const LOCAL_KEY = 'local-test-key-0123456789';

/** The Authorization header with LOCAL_KEY. */
export const LOCAL_AUTH = { authorization: `Api-Key ${LOCAL_KEY}` };

/** Replica timings for tests: health checked every 200 ms, out of routing after three failures in a row. */
const FAST_REPLICA_TIMINGS = { healthIntervalMs: 200, unhealthyAfter: 3, killAfter: 15, terminateGraceMs: 2000 };

/** A home with a deployment ready for a node to run. */
export interface LocalDeployment {
  home: string;
  paths: HomePaths;
  store: SqliteStore;
  modelId: string;
  deploymentId: string;
  /** The deployment's predict URL on a gateway. */
  predictUrl(gatewayUrl: string): string;
  /** Closes the store and removes the home. */
  remove(): Promise<void>;
}

let systemPython: string | undefined;

/** Creates the home; `runtime` is merged into the config.yaml's runtime section. */
export async function localDeployment(
  fixture: string,
  options: { runtime?: Record<string, unknown>; status?: DeploymentStatus; desiredReplicas?: number } = {},
): Promise<LocalDeployment> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-node-test-'));
  const paths = homePaths(home);
  const store = new SqliteStore(paths.database);
  await store.createApiKey({ name: 'test', prefix: 'local', secretHash: hashApiKey(LOCAL_KEY), role: 'admin' });
  const model = await store.findOrCreateModel(`fixture-${fixture}`);
  const deployment = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
  const dir = buildDir(paths, deployment.id);
  fs.cpSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'models', fixture), dir, { recursive: true });
  const pkg = readModelPackage(dir);
  pkg.config.runtime = { ...pkg.config.runtime, ...options.runtime };
  writeServerConfig(dir, pkg);
  systemPython ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const python = environmentPython(environmentDir(paths.venvs, 'system-python'));
  fs.mkdirSync(path.dirname(python), { recursive: true });
  fs.symlinkSync(systemPython, python);
  await store.updateDeployment(deployment.id, {
    config: pkg.config,
    env_key: 'system-python',
    status: options.status ?? 'ACTIVE',
    desired_replicas: options.desiredReplicas ?? 1,
  });
  await store.adoptIfNoCurrentDeployment(model.id, 'production', deployment.id);
  return {
    home,
    paths,
    store,
    modelId: model.id,
    deploymentId: deployment.id,
    predictUrl: (gatewayUrl) => `${gatewayUrl}/models/${model.id}/deployment/${deployment.id}/predict`,
    remove: async () => {
      await store.close();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** A node (not started) running the deployment's home: gateway on a free port, resync every 200 ms, FAST_REPLICA_TIMINGS, no log; `options` override any of these. */
export function localNode(local: LocalDeployment, options: Partial<NodeOptions> = {}): Node {
  return new Node({
    store: local.store,
    paths: local.paths,
    nodeId: 'test-node',
    host: '127.0.0.1',
    gatewayPort: 0,
    resyncMs: 200,
    timings: FAST_REPLICA_TIMINGS,
    log: () => {},
    ...options,
  });
}
