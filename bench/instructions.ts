/**
 * The instruction bench: how many instructions each proxy executes in user space per request,
 * counted by callgrind (valgrind), for Gantry's gateway and for nginx proxying the same echo
 * replica, side by side in one run. A count does not move with the machine's load the way the
 * timings of bench/data-plane.ts do (the same binary, input and warm-up give the same count), so
 * this is the bench that shows a change in the gateway's own work. It leaves out the kernel's
 * share (the socket reads and writes, the same count for both), and timings under valgrind mean
 * nothing: only the counts are read.
 *
 * The gateway runs alone in a process (bench/standalone-gateway.ts) in front of the replica a
 * node built and started, and so does a bare Node forwarder (bench/node-forwarder.ts: what Node
 * itself costs per proxied request, the floor under any gateway written for it); the client is the bench process, sending one request at a time on a
 * kept-alive connection. Each path is warmed up, then its count is zeroed, `runs` times
 * `requests` requests are sent with the count on, and the least count is reported.
 *
 *   npm run build && npm run bench:instructions -- [--requests 2000] [--runs 5] [--warmup 8000]
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startGantry } from './gantry-under-test';
import { nginxConfig, nginxVersion } from './nginx-proxy';
import { freePort } from '../test/helpers/ports';
import { type ChildProcesses, type CleanupSteps, runBenchToReport, runToCompletion } from './processes';
import { STANDALONE_MODEL_ID } from './standalone-gateway';

/** The bench's settings, from the command line. */
export interface InstructionBenchOptions {
  requests: number;
  runs: number;
  warmup: number;
}

/** The predict body every request sends. */
const BODY = '{"text":"benchmark"}';
/** The standalone gateway's key. */
const KEY = 'instruction-bench-key-0123456789';

/** The options in `argv` (`--requests 2000 --runs 5 --warmup 8000`). */
export function parseInstructionBenchOptions(argv: string[]): InstructionBenchOptions {
  const known = new Set(['--requests', '--runs', '--warmup']);
  const options: InstructionBenchOptions = { requests: 2000, runs: 5, warmup: 8000 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = Number(argv[i + 1]);
    if (!known.has(name)) throw new Error(`unknown option ${name} (options: ${[...known].join(' ')})`);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} takes a positive whole number, not ${JSON.stringify(argv[i + 1])}`);
    options[name.slice(2) as keyof InstructionBenchOptions] = value;
  }
  return options;
}

/** The instruction count of a callgrind dump: its `totals:` line (or `summary:`). */
export function callgrindTotal(dump: string): number {
  const match = /^(?:totals|summary):\s*(\d+)/m.exec(dump);
  if (!match) throw new Error('the callgrind dump has no totals line');
  return Number(match[1]);
}

/** Sends `count` requests one after another on one kept-alive connection; rejects on any answer but 200. */
function sendSequentially(port: number, request: Buffer, count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received: Buffer = Buffer.alloc(0);
    let answered = 0;
    socket.on('connect', () => socket.write(request));
    socket.on('error', reject);
    socket.on('close', () => (answered < count ? reject(new Error(`the connection closed after ${answered} of ${count} answers`)) : undefined));
    socket.on('data', (chunk: Buffer) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      for (;;) {
        const headEnd = received.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = received.toString('latin1', 0, headEnd);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? Number.NaN);
        if (!head.startsWith('HTTP/1.1 200') || Number.isNaN(length)) {
          socket.destroy();
          reject(new Error(`an answer was not a 200 with a Content-Length: ${head.split('\r\n')[0]}`));
          return;
        }
        if (received.length < headEnd + 4 + length) return;
        received = received.subarray(headEnd + 4 + length);
        answered++;
        if (answered === count) {
          socket.end();
          resolve();
          return;
        }
        socket.write(request);
      }
    });
  });
}

/** A process under callgrind, counting only while asked to. */
class CountedProcess {
  private dumps = 0;

  constructor(
    private readonly processes: ChildProcesses,
    readonly pid: number,
    private readonly dumpPrefix: string,
  ) {}

  /** Instructions for one batch of requests: zeroed, counted while `send` runs, dumped and read. */
  async count(send: () => Promise<void>): Promise<number> {
    const control = (flag: string): Promise<string> => runToCompletion(this.processes, 'callgrind_control', [flag, String(this.pid)]);
    await control('--zero');
    await control('--instr=on');
    await send();
    await control('--dump');
    await control('--instr=off');
    this.dumps++;
    return callgrindTotal(fs.readFileSync(`${this.dumpPrefix}.${this.pid}.${this.dumps}`, 'utf8'));
  }
}

/** Starts `command` under callgrind (counting off) and resolves once `ready` answers. */
async function startCounted(processes: ChildProcesses, dumpPrefix: string, command: string, args: string[], ready: () => Promise<boolean>): Promise<CountedProcess> {
  const child = processes.spawn('valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${dumpPrefix}.%p`, command, ...args]);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  // Under valgrind a start takes seconds (Node: tens of seconds).
  const deadline = Date.now() + 180_000;
  while (!(await ready())) {
    if (child.exitCode !== null) throw new Error(`${command} ended under valgrind: ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${command} did not start under valgrind in 180 s: ${output.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return new CountedProcess(processes, child.pid!, dumpPrefix);
}

/** Whether a predict through `port` at `target` answers 200. */
async function answers200(port: number, request: Buffer): Promise<boolean> {
  try {
    await sendSequentially(port, request, 1);
    return true;
  } catch {
    return false;
  }
}

/** A POST of the bench's body to `target`, as raw bytes. */
function predictRequest(target: string, extraHeaders: string): Buffer {
  return Buffer.from(`POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extraHeaders}Content-Length: ${BODY.length}\r\n\r\n${BODY}`);
}

/** One path's count: warmed up, then the least of `runs` counted batches, per request. */
async function measure(counted: CountedProcess, port: number, request: Buffer, options: InstructionBenchOptions, progress: (line: string) => void, name: string): Promise<number> {
  await sendSequentially(port, request, options.warmup);
  const perRequest: number[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const total = await counted.count(() => sendSequentially(port, request, options.requests));
    perRequest.push(total / options.requests);
    progress(`  ${name}, run ${run}/${options.runs}: ${Math.round(total / options.requests).toLocaleString('en-US')} instructions per request`);
  }
  return Math.min(...perRequest);
}

async function runBench(options: InstructionBenchOptions, processes: ChildProcesses, cleanup: CleanupSteps): Promise<string> {
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);
  for (const tool of ['valgrind', 'callgrind_control', 'nginx']) {
    await runToCompletion(processes, tool, tool === 'nginx' ? ['-v'] : ['--version']).catch(() => {
      throw new Error(`${tool} is not installed: the instruction bench needs valgrind and nginx (Debian: apt-get install valgrind nginx-light)`);
    });
  }
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-instructions-'));
  cleanup.add(`removing ${workDir}`, () => fs.rmSync(workDir, { recursive: true, force: true }));
  progress('building examples/echo and starting a node for its replica…');
  const gantry = await startGantry(path.join(workDir, 'home'), path.join(workDir, 'gantry-node.log'), BODY, cleanup);
  const replica = gantry.replicas()[0]!;

  const gatewayPort = await freePort();
  const gatewayRequest = predictRequest(`/models/${STANDALONE_MODEL_ID}/production/predict`, `Authorization: Api-Key ${KEY}\r\n`);
  progress('starting the gateway alone under callgrind…');
  const gateway = await startCounted(
    processes,
    path.join(workDir, 'gateway'),
    process.execPath,
    [path.join(__dirname, 'standalone-gateway.js'), String(gatewayPort), String(replica.port), path.join(workDir, 'gateway-access.log'), KEY],
    () => answers200(gatewayPort, gatewayRequest),
  );

  const nginxPort = await freePort();
  const nginxDir = path.join(workDir, 'nginx');
  fs.mkdirSync(nginxDir);
  fs.writeFileSync(path.join(nginxDir, 'nginx.conf'), nginxConfig({ dir: nginxDir, listenPort: nginxPort, upstreamPorts: [replica.port], singleProcess: true }));
  const nginxRequest = predictRequest('/predict', '');
  progress('starting nginx under callgrind…');
  const nginx = await startCounted(
    processes,
    path.join(workDir, 'nginx-counts'),
    'nginx',
    ['-p', nginxDir, '-e', path.join(nginxDir, 'nginx-error.log'), '-c', path.join(nginxDir, 'nginx.conf')],
    () => answers200(nginxPort, nginxRequest),
  );

  const forwarderPort = await freePort();
  progress('starting the bare Node forwarder under callgrind…');
  const forwarder = await startCounted(
    processes,
    path.join(workDir, 'forwarder'),
    process.execPath,
    [path.join(__dirname, 'node-forwarder.js'), String(forwarderPort), String(replica.port)],
    () => answers200(forwarderPort, nginxRequest),
  );

  const gatewayCount = await measure(gateway, gatewayPort, gatewayRequest, options, progress, 'gateway');
  const nginxCount = await measure(nginx, nginxPort, nginxRequest, options, progress, 'nginx');
  const forwarderCount = await measure(forwarder, forwarderPort, nginxRequest, options, progress, 'bare Node forwarder');
  const round = (count: number): string => Math.round(count).toLocaleString('en-US');
  const model = /^model name\s*:\s*(.+)$/m.exec(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1]?.trim() ?? 'unknown';
  return [
    `Instruction bench, ${new Date().toISOString().slice(0, 10)}: examples/echo, one replica; callgrind counts of user-space instructions in the proxy's process, ${options.requests.toLocaleString('en-US')} sequential requests on one kept-alive connection after ${options.warmup.toLocaleString('en-US')} to warm up; the least of ${options.runs} runs.`,
    '',
    '| proxy | instructions per request | / nginx |',
    '|---|---|---|',
    `| gateway (fast lane, alone in a process) | ${round(gatewayCount)} | ${(gatewayCount / nginxCount).toFixed(2)} |`,
    `| ${await nginxVersion(processes)} (one process, keep-alive upstream, access log on) | ${round(nginxCount)} | 1.00 |`,
    `| bare Node forwarder (bench/node-forwarder.ts: Node's floor, no routing, keys, logs or metrics) | ${round(forwarderCount)} | ${(forwarderCount / nginxCount).toFixed(2)} |`,
    '',
    `Machine: ${os.cpus().length} CPUs (${model}), Node ${process.version}.`,
  ].join('\n');
}

/** Runs the bench with the process's arguments, cleaning up on any exit (Ctrl-C and SIGTERM included). */
async function main(): Promise<void> {
  const options = parseInstructionBenchOptions(process.argv.slice(2));
  await runBenchToReport((processes, cleanup) => runBench(options, processes, cleanup));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
