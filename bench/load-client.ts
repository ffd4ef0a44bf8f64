/**
 * The bench's load client, a separate process: `wrk` when it is on PATH, otherwise autocannon's
 * CLI (a dev dependency). Runs one measurement and parses the client's own summary; any answer
 * that is not a success, and any socket error, fails the measurement instead of being averaged in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../src/shared/project-paths';
import { runToCompletion, type ChildProcesses } from './processes';

/** What one client process measured. */
export interface LoadResult {
  /** Answers counted by the client. */
  requests: number;
  /** Completed requests per second, as the client computed them. */
  requestsPerSecond: number;
  /** Median latency, milliseconds. */
  p50Ms: number;
  /** 99th percentile latency, milliseconds. */
  p99Ms: number;
}

/** Which program sends the load. */
export type ClientKind = 'wrk' | 'autocannon';

/** One measurement: a client at `connections` keep-alive connections POSTing `body` to `url` for `seconds`. */
export interface LoadSpec {
  url: string;
  connections: number;
  seconds: number;
  body: string;
  headers: Record<string, string>;
}

/** wrk's latency units (src/units.c: us, ms, s, m, h) in milliseconds; microseconds divide (86 / 1000 is 0.086, 86 × 0.001 is not). */
const WRK_TIME_UNITS_MS: Record<string, (value: number) => number> = {
  us: (value) => value / 1000,
  ms: (value) => value,
  s: (value) => value * 1000,
  m: (value) => value * 60_000,
  h: (value) => value * 3_600_000,
};

/** "86.00us", "4.03ms", "1.20s", "2.00m" in milliseconds; throws on anything else. */
export function parseWrkDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new Error(`wrk: not a duration: ${JSON.stringify(text)}`);
  return WRK_TIME_UNITS_MS[match[2]!]!(Number(match[1]));
}

/**
 * The result in wrk's `--latency` output. Throws when wrk counted answers with a status of 400 or
 * more ("Non-2xx or 3xx responses": wrk counts status > 399 under that name), any socket error
 * (connect, read, write, timeout), no request at all, or when a figure is missing.
 */
export function parseWrkOutput(output: string): LoadResult {
  const failures: string[] = [];
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(output);
  if (non2xx && Number(non2xx[1]) > 0) failures.push(`${non2xx[1]} answers with status >= 400`);
  // wrk prints the line only when one of its counts (connect, read, write, timeout) is not zero.
  const socketErrors = /^\s*Socket errors:\s*(.*?)\s*$/m.exec(output);
  if (socketErrors && /[1-9]/.test(socketErrors[1]!)) failures.push(`socket errors: ${socketErrors[1]}`);
  if (failures.length > 0) throw new Error(`wrk: ${failures.join('; ')}\n${output}`);

  const distributionStart = output.indexOf('Latency Distribution');
  const percentile = (p: number): number => {
    const match = distributionStart < 0 ? null : new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+(\\S+)\\s*$`, 'm').exec(output.slice(distributionStart));
    if (!match) throw new Error(`wrk: no ${p}% line in the latency distribution (was --latency given?)\n${output}`);
    return parseWrkDuration(match[1]!);
  };
  const total = /^\s*(\d+) requests in /m.exec(output);
  const rate = /^Requests\/sec:\s*(\d+(?:\.\d+)?)\s*$/m.exec(output);
  if (!total || !rate) throw new Error(`wrk: no request count or Requests/sec line\n${output}`);
  const requests = Number(total[1]);
  if (requests === 0) throw new Error(`wrk: no request was answered\n${output}`);
  return { requests, requestsPerSecond: Number(rate[1]), p50Ms: percentile(50), p99Ms: percentile(99) };
}

/**
 * The result in autocannon's `--json` output. Throws on any non-2xx answer, error or timeout, and
 * when more requests were sent than answered beyond the ones still in flight at the end (one per
 * connection): autocannon reconnects after a dropped connection without counting an error.
 * Its latencies are whole milliseconds (it records them in an integer histogram).
 */
export function parseAutocannonJson(output: string): LoadResult {
  let report: unknown;
  try {
    report = JSON.parse(output.trim());
  } catch {
    throw new Error(`autocannon: the output is not JSON\n${output}`);
  }
  /** The number at a dotted path of the report, e.g. "latency.p50". */
  const count = (fieldPath: string): number => {
    const value = fieldPath.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined), report);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`autocannon: no ${fieldPath} in the output\n${output}`);
    return value;
  };
  const answered = count('requests.total');
  const sent = count('requests.sent');
  const connections = count('connections');
  const failures: string[] = [];
  for (const field of ['non2xx', 'errors', 'timeouts', 'resets', 'mismatches']) {
    if (count(field) > 0) failures.push(`${field} ${count(field)}`);
  }
  if (sent - answered > connections) failures.push(`${sent - answered} requests sent but never answered (${connections} may be in flight at the end)`);
  if (answered === 0) failures.push('no request was answered');
  if (failures.length > 0) throw new Error(`autocannon: ${failures.join('; ')}\n${output}`);
  return { requests: answered, requestsPerSecond: answered / count('duration'), p50Ms: count('latency.p50'), p99Ms: count('latency.p99') };
}

/** A wrk Lua script that sends every request as a POST of `body` with `headers`. */
export function wrkScript(body: string, headers: Record<string, string>): string {
  const lua = (text: string): string => `"${text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
  return ['wrk.method = "POST"', `wrk.body = ${lua(body)}`, ...Object.entries(headers).map(([name, value]) => `wrk.headers[${lua(name)}] = ${lua(value)}`), ''].join('\n');
}

/** Whether `program` is an executable file in a directory of PATH. */
export function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * How long a request may take before the client counts it as a timeout (an error that fails the
 * run). wrk's default is 2 s, which a loaded machine exceeds at 64 connections: a slow answer is a
 * latency to report, a lost one an error.
 */
const REQUEST_TIMEOUT_SECONDS = 10;

/** autocannon's CLI in this project's node_modules. */
const AUTOCANNON_CLI = path.join(PROJECT_ROOT, 'node_modules', 'autocannon', 'autocannon.js');

/** A load client of the given kind; `workDir` holds wrk's Lua scripts. */
export class LoadClient {
  private scripts = new Map<string, string>();

  constructor(
    readonly kind: ClientKind,
    private readonly workDir: string,
    private readonly processes: ChildProcesses,
  ) {}

  /** wrk when it is on PATH, otherwise autocannon. */
  static pick(workDir: string, processes: ChildProcesses): LoadClient {
    return new LoadClient(onPath('wrk') ? 'wrk' : 'autocannon', workDir, processes);
  }

  /** Runs one measurement in a child process and parses its summary. */
  async run(spec: LoadSpec): Promise<LoadResult> {
    if (this.kind === 'wrk') {
      // One thread: the client takes as little of the machine's CPU as it can (one wrk thread
      // drives far more requests a second than an echo replica answers).
      const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, `--timeout`, `${REQUEST_TIMEOUT_SECONDS}s`, '--latency', '-s', this.scriptFor(spec), spec.url];
      return parseWrkOutput(await runToCompletion(this.processes, 'wrk', args));
    }
    const headerArgs = Object.entries(spec.headers).flatMap(([name, value]) => ['-H', `${name}=${value}`]);
    const args = [
      AUTOCANNON_CLI,
      '-c',
      String(spec.connections),
      '-d',
      String(spec.seconds),
      '-t',
      String(REQUEST_TIMEOUT_SECONDS),
      '-m',
      'POST',
      ...headerArgs,
      '-b',
      spec.body,
      '--json',
      spec.url,
    ];
    return parseAutocannonJson(await runToCompletion(this.processes, process.execPath, args));
  }

  /** The version line of the client, for the machine description. */
  async version(): Promise<string> {
    if (this.kind === 'wrk') {
      // wrk -v prints its version and usage and exits 1.
      const output = await runToCompletion(this.processes, 'wrk', ['-v'], { allowFailure: true });
      return output
        .split('\n')[0]!
        .replace(/\s*Copyright.*$/, '')
        .trim();
    }
    return `autocannon ${JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')).version}`;
  }

  private scriptFor(spec: LoadSpec): string {
    const script = wrkScript(spec.body, spec.headers);
    let file = this.scripts.get(script);
    if (!file) {
      file = path.join(this.workDir, `wrk-post-${this.scripts.size}.lua`);
      fs.writeFileSync(file, script);
      this.scripts.set(script, file);
    }
    return file;
  }
}
