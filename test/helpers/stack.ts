/**
 * Runs the real stack for integration tests, exactly as `npm start` does (supervisor, a
 * Temporal dev server, API, node, worker), on free ports with its own GANTRY_HOME.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually, freePorts } from './ports';

/** One line of the stack's output: a JSON log line (docs/operations.md#logs). */
export interface LogLine {
  time: string;
  level: string;
  /** gantry (the supervisor), temporal, api, node or worker. */
  process: string;
  msg: string;
  [field: string]: unknown;
}

/** What a process printed and how it ended. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The result of running the CLI. */
export type CliResult = ProcessResult;

/** Runs `command` to its end in `cwd` with `env`, feeding it `input` on standard input. */
export function runProcess(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** Runs the real gantry CLI (bin/gantry.js) with `env`, feeding it `input` on standard input. */
export function runGantryCli(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<CliResult> {
  return runProcess(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'gantry.js'), ...args], { cwd: PROJECT_ROOT, env, input });
}

/** A running stack and the ways a test talks to it. */
export class TestStack {
  private process: ChildProcess | undefined;
  private output = '';
  apiKey = '';

  private constructor(
    readonly home: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Creates a stack with its own home and ports (not started yet). */
  static async create(extraEnv: NodeJS.ProcessEnv = {}): Promise<TestStack> {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-it-'));
    const [api, gateway, temporal, ui, workerMetrics] = await freePorts(5);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      GANTRY_HOME: home,
      GANTRY_HOST: '127.0.0.1',
      GANTRY_API_PORT: String(api),
      GANTRY_GATEWAY_PORT: String(gateway),
      GANTRY_WORKER_METRICS_PORT: String(workerMetrics),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
      GANTRY_TEMPORAL_UI_PORT: String(ui),
      GANTRY_CONFIG_FILE: path.join(home, 'cli-credentials.json'),
      ...extraEnv,
    };
    delete env.GANTRY_API_KEY;
    delete env.GANTRY_URL;
    delete env.GANTRY_GATEWAY_URL;
    return new TestStack(home, env);
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.env.GANTRY_API_PORT}`;
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.env.GANTRY_GATEWAY_PORT}`;
  }

  /** Where the worker serves its metrics. */
  get workerMetricsUrl(): string {
    return `http://127.0.0.1:${this.env.GANTRY_WORKER_METRICS_PORT}/metrics`;
  }

  /** Everything the stack printed so far. */
  get log(): string {
    return this.output;
  }

  /** Every whole line the stack printed so far, parsed; throws on a line that is not JSON. */
  logLines(): LogLine[] {
    const text = this.output.slice(0, this.output.lastIndexOf('\n') + 1);
    return text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => {
        try {
          return JSON.parse(line) as LogLine;
        } catch {
          throw new Error(`the stack printed a line that is not JSON: ${line}`);
        }
      });
  }

  /** Whether a line the stack printed (by `process`, when given) has a message matching `pattern`. */
  logged(pattern: RegExp, process?: string): boolean {
    return this.logLines().some((line) => (process === undefined || line.process === process) && pattern.test(line.msg));
  }

  /** Starts `npm start`'s entry point and waits until it says it is up. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist', 'src', 'stack', 'start.js')], {
      env: this.env,
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process = child;
    const mark = this.output.length;
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    await eventually(
      'the stack to come up',
      async () => {
        if (child.exitCode !== null) throw new Error(`the stack exited with ${child.exitCode}:\n${this.output}`);
        return this.output.slice(mark).includes('Gantry is up.') ? true : undefined;
      },
      120_000,
    );
    this.apiKey = fs.readFileSync(path.join(this.home, 'admin-api-key'), 'utf8').trim();
  }

  /** The pid of one of the supervisor's children (`api`, `node`, `worker`), found by its command line. */
  childPid(name: 'api' | 'node' | 'worker'): number {
    const script = { api: 'dist/src/api/server.js', node: 'dist/src/node/main.js', worker: 'dist/worker.js' }[name];
    const supervisor = this.process?.pid;
    if (!supervisor) throw new Error('the stack is not running');
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const command = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (parent === supervisor && command.some((arg) => arg.endsWith(script))) return Number(entry);
      } catch {
        // the process ended while we looked
      }
    }
    throw new Error(`no ${name} process under the supervisor ${supervisor}`);
  }

  /** Stops the stack as Ctrl-C does and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT');
    await exited;
    this.process = undefined;
  }

  /** Stops the stack and removes its home. */
  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.home, { recursive: true, force: true });
  }

  /** Runs the gantry CLI against this stack. */
  cli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
    return runGantryCli(args, { ...this.env, GANTRY_URL: this.apiUrl, GANTRY_GATEWAY_URL: this.gatewayUrl, GANTRY_API_KEY: this.apiKey, ...options.env }, options.input);
  }

  /** Calls the management API with the admin key. */
  async api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${this.apiUrl}${route}`, {
      method,
      headers: { authorization: `Api-Key ${this.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  /** Posts to an inference path on the gateway. */
  async predict(route: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; deploymentId: string | null; body: any }> {
    const response = await fetch(`${this.gatewayUrl}${route}`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${this.apiKey}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: response.status, deploymentId: response.headers.get('x-gantry-deployment-id'), body: parsed };
  }

  /** A Temporal client for this stack's server. */
  async temporalClient(): Promise<Client> {
    const connection = await Connection.connect({ address: this.env.TEMPORAL_ADDRESS! });
    return new Client({ connection });
  }
}
