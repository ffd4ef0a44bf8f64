/**
 * The data-plane bench: the same echo replica(s) called directly, through Gantry's gateway
 * (production route, with the key check) and through nginx, by a load client in its own process
 * (wrk, or autocannon's CLI when wrk is not installed), at 1, 8 and 64 connections, with one and
 * with two replicas. Rounds are interleaved across the paths after a warm-up of each; the median
 * round is reported as one Markdown table, with issue 11's two targets evaluated per row and the
 * machine described. A second nginx, configured as the first, is measured beside them and held
 * to the same targets: how a proxy equal to nginx fares shows what the run can tell apart.
 *
 *   npm run build && npm run bench -- [--rounds 3] [--seconds 5] [--warmup 2] [--connections 1,8,64] [--replicas 1,2]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { answers, startGantry, waitFor, type GantryUnderTest, type ReplicaEndpoint } from './gantry-under-test';
import { LoadClient, onPath, type LoadResult, type LoadSpec } from './load-client';
import { nginxVersion, startNginx, type RunningNginx } from './nginx-proxy';
import { freePort } from '../test/helpers/ports';
import { type ChildProcesses, type CleanupSteps, processTreeCpuTicks, runBenchToReport } from './processes';
import { combineSimultaneous, evaluateTargets, markdownTable, medianRound, splitConnections, verdictLines, verdictSummary, type PathName, type Row } from './report';

/** The bench's settings, from the command line. */
export interface BenchOptions {
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  connections: number[];
  replicas: number[];
}

/** The predict body every request sends. */
const BODY = '{"text":"benchmark"}';
const JSON_HEADERS = { 'Content-Type': 'application/json' };

/**
 * The smallest share of the replicas' CPU time any one replica must take in a warm-up, with more
 * than one connection. Low on purpose: on a loaded machine even two clients at one replica each
 * gave 70 % / 30 %; a path that leaves a replica out gives it only its health checks, about 0 %.
 */
const MIN_REPLICA_SHARE = 0.1;

/** How many warm-ups a path gets to spread its load over every replica (the gateway may learn of a new replica a moment after the runtime). */
const BALANCE_ATTEMPTS = 5;

/** The options in `argv` (`--rounds 3 --seconds 5 --warmup 2 --connections 1,8,64 --replicas 1,2`). */
export function parseBenchOptions(argv: string[]): BenchOptions {
  const value = (name: string): string | undefined => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  const positive = (name: string, fallback: number): number => {
    const text = value(name);
    if (text === undefined) return fallback;
    const number = Number(text);
    if (!(number > 0)) throw new Error(`--${name} takes a positive number, not ${JSON.stringify(text)}`);
    return number;
  };
  const list = (name: string, fallback: number[]): number[] => {
    const text = value(name);
    if (text === undefined) return fallback;
    const numbers = text.split(',').map(Number);
    if (numbers.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`--${name} takes positive whole numbers separated by commas, not ${JSON.stringify(text)}`);
    return numbers;
  };
  const known = new Set(['--rounds', '--seconds', '--warmup', '--connections', '--replicas']);
  for (let i = 0; i < argv.length; i += 2) if (!known.has(argv[i]!)) throw new Error(`unknown option ${argv[i]} (options: ${[...known].join(' ')})`);
  return {
    rounds: Math.round(positive('rounds', 3)),
    seconds: Math.round(positive('seconds', 5)),
    warmupSeconds: Math.round(positive('warmup', 2)),
    connections: list('connections', [1, 8, 64]),
    replicas: list('replicas', [1, 2]),
  };
}

/** CPU model, CPU count, Node version, client and nginx versions. */
async function describeMachine(client: LoadClient, nginx: string | undefined): Promise<string> {
  const model = /^model name\s*:\s*(.+)$/m.exec(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return `${os.cpus().length} CPUs (${model.trim()}), Node ${process.version}, ${await client.version()}, ${nginx ?? 'no nginx'}`;
}

/** Formats a result for the progress lines. */
function brief(result: LoadResult): string {
  return `${Math.round(result.requestsPerSecond)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`;
}

/** Runs the bench; resolves with the report's text. */
async function runBench(options: BenchOptions, processes: ChildProcesses, cleanup: CleanupSteps): Promise<string> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-bench-'));
  cleanup.add(`removing ${workDir}`, () => fs.rmSync(workDir, { recursive: true, force: true }));
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);

  const client = LoadClient.pick(workDir, processes);
  const nginxInstalled = onPath('nginx');
  const nginxName = nginxInstalled ? await nginxVersion(processes) : undefined;
  const machine = await describeMachine(client, nginxName);
  progress(`client: ${client.kind === 'wrk' ? 'wrk (on PATH), one thread' : "autocannon's CLI (wrk is not on PATH)"}`);
  progress(nginxInstalled ? `nginx: ${nginxName}, started by the bench in ${workDir}` : 'nginx: not on PATH (install nginx-light to compare): the nginx columns stay empty');
  progress('building examples/echo and starting a node…');

  const gantry: GantryUnderTest = await startGantry(path.join(workDir, 'home'), path.join(workDir, 'gantry-node.log'), BODY, cleanup);
  const load = (url: string, connections: number, seconds: number, headers: Record<string, string> = {}): LoadSpec => ({
    url,
    connections,
    seconds,
    body: BODY,
    headers: { ...JSON_HEADERS, ...headers },
  });

  const rows: Row[] = [];
  for (const replicaCount of options.replicas) {
    await gantry.scaleTo(replicaCount);
    const replicas = gantry.replicas();
    const nginxes: RunningNginx[] = [];
    if (nginxInstalled) {
      for (const name of ['nginx', 'twin']) {
        const started = await startNginx(
          { dir: path.join(workDir, `${name}-${replicaCount}`), listenPort: await freePort(), upstreamPorts: replicas.map((r) => r.port) },
          processes,
        );
        nginxes.push(started);
        cleanup.add(`stopping ${name}`, () => started.stop());
        await waitFor(`a 200 through ${name}`, () => answers(`${started.url}/predict`, {}, BODY));
      }
    }
    const measure: Partial<Record<PathName, (connections: number, seconds: number) => Promise<LoadResult>>> = {
      direct: async (connections, seconds) =>
        combineSimultaneous(
          await Promise.all(
            splitConnections(connections, replicas.length).map((share, index) => client.run(load(`http://127.0.0.1:${replicas[index]!.port}/predict`, share, seconds))),
          ),
        ),
      gateway: (connections, seconds) => client.run(load(gantry.gatewayPredictUrl, connections, seconds, gantry.authHeaders)),
    };
    const [nginx, twin] = nginxes;
    if (nginx && twin) {
      measure.nginx = (connections, seconds) => client.run(load(`${nginx.url}/predict`, connections, seconds));
      measure.twin = (connections, seconds) => client.run(load(`${twin.url}/predict`, connections, seconds));
    }
    const paths = Object.keys(measure) as PathName[];

    for (const connections of options.connections) {
      for (const pathName of paths) await warmUp(pathName, () => measure[pathName]!(connections, options.warmupSeconds), replicas, connections, progress);
      const rounds = new Map<PathName, LoadResult[]>(paths.map((pathName) => [pathName, []]));
      for (let round = 1; round <= options.rounds; round++) {
        for (const pathName of roundOrder(paths, round)) {
          const result = await measure[pathName]!(connections, options.seconds);
          rounds.get(pathName)!.push(result);
          progress(`  ${replicaCount} replica(s), ${connections} connection(s), round ${round}/${options.rounds}, ${pathName}: ${brief(result)}`);
        }
      }
      const results: Row['results'] = {};
      for (const pathName of paths) results[pathName] = medianRound(rounds.get(pathName)!);
      rows.push({ replicas: replicaCount, connections, results });
    }
    for (const started of nginxes) await started.stop();
  }

  const lanes = await gantry.lanes();
  const latencyResolutionMs = client.kind === 'wrk' ? 0.01 : 1;
  const split = options.replicas.some((n) => n > 1)
    ? `Direct with several replicas: one ${client.kind} process per replica, started together, with the connections split evenly (fewer connections than replicas: only the first replicas get one); req/s is their sum, p50 and p99 the request-weighted means of their percentiles.`
    : '';
  const gatewayVerdicts = evaluateTargets(rows, latencyResolutionMs);
  const twinVerdicts = evaluateTargets(rows, latencyResolutionMs, 'twin');
  const calibration = nginxInstalled
    ? [
        '',
        `Calibration: the same targets for a second nginx, configured as the first and measured in the same rounds, in the gateway's place: it ${verdictSummary(twinVerdicts)}. A proxy equal to nginx meets a "≥" target only when the rounds' noise falls its way; the targets it misses are differences this run cannot tell apart.`,
        '',
        markdownTable(rows, 'twin'),
        '',
        ...verdictLines(twinVerdicts),
      ]
    : [];
  return [
    `Data-plane bench, ${new Date().toISOString().slice(0, 10)}: examples/echo; client ${client.kind} in its own process (${client.kind === 'wrk' ? 'one thread' : "autocannon's CLI, latencies in whole milliseconds"}); ${options.rounds} rounds of ${options.seconds} s per path interleaved (in order in odd rounds, reversed in even ones), after a ${options.warmupSeconds} s warm-up of each path; each cell is the median round by req/s.`,
    `Paths: direct (the client at the replica's port), gateway (Gantry's production route with the Api-Key header), nginx (${nginxName ? `${nginxName}, one worker, keep-alive upstream, access log on; a second one the same for the calibration` : 'not on PATH: not measured'}). ${split}`,
    '',
    markdownTable(rows),
    '',
    `Targets (issue 11): the gateway ${verdictSummary(gatewayVerdicts)}.`,
    ...verdictLines(gatewayVerdicts),
    ...calibration,
    '',
    `The gateway served ${lanes.fastLane.toLocaleString('en-US')} of the ${lanes.answered.toLocaleString('en-US')} requests it answered (readiness checks and warm-ups included) on its fast lane (docs/architecture.md §5).`,
    `Machine: ${machine}.`,
  ].join('\n');
}

/**
 * The paths' order in round `round` (from 1): as listed in odd rounds, reversed in even ones, so
 * that a drift of the machine's speed during the rounds does not always favour the same paths and
 * no path always runs right after the same one.
 */
export function roundOrder<T>(paths: readonly T[], round: number): T[] {
  return round % 2 === 1 ? [...paths] : [...paths].reverse();
}

/**
 * A warm-up of one path; with several replicas and connections, checks from the replicas' CPU
 * time that each took at least MIN_REPLICA_SHARE of the load, warming up again (the gateway may
 * not have picked up a new replica yet) up to BALANCE_ATTEMPTS times before failing.
 */
async function warmUp(pathName: PathName, run: () => Promise<LoadResult>, replicas: ReplicaEndpoint[], connections: number, progress: (line: string) => void): Promise<void> {
  const checkBalance = replicas.length > 1 && connections >= replicas.length;
  for (let attempt = 1; ; attempt++) {
    const before = replicas.map((replica) => processTreeCpuTicks(replica.pid));
    const result = await run();
    if (!checkBalance) return progress(`  warm-up ${pathName}, ${connections} connection(s): ${brief(result)}`);
    const used = replicas.map((replica, index) => processTreeCpuTicks(replica.pid) - before[index]!);
    const total = used.reduce((sum, ticks) => sum + ticks, 0);
    const shares = used.map((ticks) => (total > 0 ? ticks / total : 0));
    const sharesText = shares.map((share) => `${Math.round(share * 100)} %`).join(' / ');
    progress(`  warm-up ${pathName}, ${connections} connection(s): ${brief(result)}; replicas' CPU shares ${sharesText}`);
    if (shares.every((share) => share >= MIN_REPLICA_SHARE)) return;
    if (attempt === BALANCE_ATTEMPTS) throw new Error(`${pathName} did not spread its load over the ${replicas.length} replicas (CPU shares ${sharesText})`);
  }
}

/** Runs the bench with the process's arguments, cleaning up on any exit (Ctrl-C and SIGTERM included). */
async function main(): Promise<void> {
  const options = parseBenchOptions(process.argv.slice(2));
  await runBenchToReport((processes, cleanup) => runBench(options, processes, cleanup));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
