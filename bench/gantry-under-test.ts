/**
 * The only part of the bench that knows Gantry's insides: it builds examples/echo, starts a
 * `Node` (gateway, runtime, reconciler) on a SQLite store in a temporary GANTRY_HOME, and hands
 * back what a client outside needs: the production route, its key, and the replicas' ports and
 * process ids. Readiness is checked over HTTP through the gateway. When the node's construction
 * changes, this file is what to adapt.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashApiKey } from '../src/auth/key-hash';
import { buildModelPackage } from '../src/build/builder';
import { packModelDirectory } from '../src/cli/package-archive';
import { buildDir, homePaths } from '../src/home';
import { createLogger } from '../src/logging/logger';
import { Node } from '../src/node/node';
import { DEFAULT_PACKAGE_LIMITS } from '../src/shared/constants';
import { PROJECT_ROOT } from '../src/shared/project-paths';
import { DEFAULT_AUTOSCALING } from '../src/shared/schemas';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';
import { parsePrometheusText, sumOf } from '../test/helpers/prometheus';
import type { CleanupSteps } from './processes';

/** A replica as the bench sees it: where it listens and which process runs it. */
export interface ReplicaEndpoint {
  port: number;
  pid: number;
}

/** A running Gantry data plane serving examples/echo. */
export interface GantryUnderTest {
  /** The production predict route through the gateway. */
  gatewayPredictUrl: string;
  /** The header the gateway requires (the bench's admin key). */
  authHeaders: Record<string, string>;
  /** The deployment's routable replicas. */
  replicas(): ReplicaEndpoint[];
  /** Sets the deployment to exactly `count` replicas (no autoscaling) and waits until that many are routable and the gateway answers. */
  scaleTo(count: number): Promise<void>;
  /** The requests the gateway answered so far, and how many of them it served on its fast lane (from its `/metrics`). */
  lanes(): Promise<{ answered: number; fastLane: number }>;
  /** Stops the node (and its replicas) and closes the store. */
  stop(): Promise<void>;
}

/** The bench's API key. */
const BENCH_KEY = 'bench-key-0123456789';

/** How long a replica (after its build) may take to become ready. */
const READY_TIMEOUT_MS = 60_000;

/**
 * Builds examples/echo in `home` (a fresh directory) and starts a node with one replica of it;
 * resolves when a predict through the gateway answers 200. The node's log lines, the gateway's
 * access log included, go to `logFile`. Stopping the node is added to `cleanup` at once, so an
 * interrupted start leaves no replica behind.
 */
export async function startGantry(home: string, logFile: string, body: string, cleanup: CleanupSteps): Promise<GantryUnderTest> {
  const paths = homePaths(home);
  const store = new SqliteStore(paths.database);
  let node: Node | undefined;
  const logFd = fs.openSync(logFile, 'a');
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await node?.stop();
      await store.close();
      fs.closeSync(logFd);
    })());
  cleanup.add('stopping the node and its replicas', stop);
  try {
    await store.createApiKey({ name: 'bench', prefix: 'bench', secretHash: hashApiKey(BENCH_KEY), role: 'admin' });
    const model = await store.findOrCreateModel('echo');
    const deployment = await store.createDeployment({ model_id: model.id, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
    const archive = await packModelDirectory(path.join(PROJECT_ROOT, 'examples', 'echo'));
    const built = await buildModelPackage({
      archive: archive.file,
      packageDir: buildDir(paths, deployment.id),
      venvsDir: paths.venvs,
      basePython: 'python3',
      limits: DEFAULT_PACKAGE_LIMITS,
      log: () => {},
    });
    await store.updateDeployment(deployment.id, { config: built.config, env_key: built.envKey, status: 'ACTIVE', desired_replicas: 1 });
    await store.adoptIfNoCurrentDeployment(model.id, 'production', deployment.id);

    // Every log line, the gateway's per-request access line included (written by the gateway's
    // thread to the same file), is serialized and written to a file, as a production node writes its log.
    const write = (line: string): void => void fs.writeSync(logFd, line);
    const logger = createLogger('node', { destination: { write } });
    node = new Node({ store, paths, nodeId: 'bench', host: '127.0.0.1', gatewayPort: 0, log: (line) => write(`${line}\n`), logger, gatewayLogFd: logFd });
    const gatewayUrl = await node.start();
    const running = node;
    const gantry: GantryUnderTest = {
      gatewayPredictUrl: `${gatewayUrl}/models/${model.id}/production/predict`,
      authHeaders: { Authorization: `Api-Key ${BENCH_KEY}` },
      replicas: () =>
        running.runtime
          .routableReplicas(deployment.id)
          .filter((replica) => replica.port !== undefined && replica.pid !== undefined)
          .map((replica) => ({ port: replica.port!, pid: replica.pid! })),
      async scaleTo(count) {
        const autoscaling = { ...DEFAULT_AUTOSCALING, min_replica: count, max_replica: count };
        await store.updateDeployment(deployment.id, { autoscaling, desired_replicas: count });
        await waitFor(`${count} routable replicas`, () => gantry.replicas().length === count);
        await waitFor('a 200 through the gateway', () => answers(gantry.gatewayPredictUrl, gantry.authHeaders, body));
      },
      async lanes() {
        const response = await fetch(`${gatewayUrl}/metrics`, { headers: gantry.authHeaders, signal: AbortSignal.timeout(5000) });
        const samples = parsePrometheusText(await response.text());
        return { answered: sumOf(samples, 'gantry_gateway_requests_total'), fastLane: sumOf(samples, 'gantry_gateway_fast_lane_requests_total') };
      },
      stop,
    };
    await gantry.scaleTo(1);
    return gantry;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Whether a POST of `body` to `url` answers 200. */
export async function answers(url: string, headers: Record<string, string>, body: string): Promise<boolean> {
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Polls `condition` every 50 ms until it holds; throws after READY_TIMEOUT_MS. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${READY_TIMEOUT_MS / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
