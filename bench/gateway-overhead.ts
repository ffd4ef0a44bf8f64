/**
 * Gateway overhead: the same echo replica called directly and through the gateway, side by
 * side in one run (rounds interleaved), at concurrency 1 and 8. Prints throughput and
 * latency for each path and the ratios gateway / direct.
 *
 *   npm run build && node dist/bench/gateway-overhead.js [--seconds 3] [--rounds 3]
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../src/auth/api-keys';
import { buildModelPackage } from '../src/build/builder';
import { buildDir, homePaths } from '../src/home';
import { createLogger } from '../src/logging/logger';
import { Node } from '../src/node/node';
import { DEFAULT_PACKAGE_LIMITS } from '../src/shared/constants';
import { PROJECT_ROOT } from '../src/shared/project-paths';
import { DEFAULT_AUTOSCALING } from '../src/shared/schemas';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';
import { packModelDirectory } from '../src/cli/package-archive';

interface Measurement {
  requests: number;
  seconds: number;
  latencies: number[];
}

const KEY = 'bench-key-0123456789';
/** Where the benchmark's node writes its log lines. */
const devNull = fs.openSync('/dev/null', 'w');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Sends requests from `concurrency` loops for `seconds`; every answer must be 200. */
async function measure(url: string, headers: Record<string, string>, concurrency: number, seconds: number): Promise<Measurement> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const body = '{"text":"benchmark"}';
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const request = http.request(
        url,
        { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
        (response) => {
          response.resume();
          response.on('end', () => {
            if (response.statusCode !== 200) reject(new Error(`status ${response.statusCode}`));
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            resolve();
          });
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  agent.destroy();
  return { requests: latencies.length, seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

function merge(parts: Measurement[]): Measurement {
  return {
    requests: parts.reduce((n, p) => n + p.requests, 0),
    seconds: parts.reduce((n, p) => n + p.seconds, 0),
    latencies: parts.flatMap((p) => p.latencies).sort((a, b) => a - b),
  };
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string, fallback: string): number => Number(argv[argv.indexOf(`--${name}`) + 1] ?? fallback) || Number(fallback);
  const seconds = argv.includes('--seconds') ? arg('seconds', '3') : 3;
  const rounds = argv.includes('--rounds') ? arg('rounds', '3') : 3;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-bench-'));
  const paths = homePaths(home);
  const store = new SqliteStore(paths.database);
  let node: Node | undefined;
  try {
    await store.createApiKey({ name: 'bench', prefix: 'bench', secretHash: hashApiKey(KEY), role: 'admin' });
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

    // The gateway writes its access log line per request as in production (serialized and
    // written), to /dev/null rather than over this benchmark's output.
    const logger = createLogger('node', { destination: { write: (line: string) => void fs.writeSync(devNull, line) } });
    node = new Node({ store, paths, nodeId: 'bench', host: '127.0.0.1', gatewayPort: 0, log: () => {}, logger });
    const gateway = await node.start();
    const deadline = Date.now() + 30_000;
    while (node.runtime.routableReplicas(deployment.id).length === 0) {
      if (Date.now() > deadline) throw new Error('the replica did not become ready');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await node.gateway.refresh();
    const replica = node.runtime.routableReplicas(deployment.id)[0]!;
    const direct = `http://127.0.0.1:${replica.port}/predict`;
    const viaGateway = `${gateway}/models/${model.id}/production/predict`;
    const auth = { authorization: `Api-Key ${KEY}` };

    console.log(`gateway overhead: echo replica, ${rounds} interleaved rounds of ${seconds} s per path and concurrency (${os.cpus().length} CPUs)`);
    console.log('| concurrency | path | req/s | p50 ms | p99 ms |');
    console.log('|---|---|---|---|---|');
    const ratios: string[] = [];
    for (const concurrency of [1, 8]) {
      await measure(direct, {}, concurrency, 1); // warm up both paths
      await measure(viaGateway, auth, concurrency, 1);
      const a: Measurement[] = [];
      const b: Measurement[] = [];
      for (let round = 0; round < rounds; round++) {
        a.push(await measure(direct, {}, concurrency, seconds));
        b.push(await measure(viaGateway, auth, concurrency, seconds));
      }
      const d = merge(a);
      const g = merge(b);
      const row = (name: string, m: Measurement): string =>
        `| ${concurrency} | ${name} | ${(m.requests / m.seconds).toFixed(0)} | ${percentile(m.latencies, 50).toFixed(2)} | ${percentile(m.latencies, 99).toFixed(2)} |`;
      console.log(row('direct', d));
      console.log(row('gateway', g));
      ratios.push(
        `concurrency ${concurrency}: gateway/direct throughput ${(g.requests / g.seconds / (d.requests / d.seconds)).toFixed(2)}, ` +
          `p50 latency ${(percentile(g.latencies, 50) / percentile(d.latencies, 50)).toFixed(2)}x, p99 ${(percentile(g.latencies, 99) / percentile(d.latencies, 99)).toFixed(2)}x`,
      );
    }
    for (const line of ratios) console.log(line);
  } finally {
    await node?.stop();
    await store.close();
    fs.rmSync(home, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
