/**
 * One replica: a model-server process, its events (fd 3), its health and its log lines.
 * It reports state changes to its owner; it never restarts itself (the runtime decides).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { appendLog, LineSplitter } from '../../logs/deployment-logs';
import { MODEL_SERVER_SCRIPT } from '../../shared/project-paths';
import { modelEnvironment } from '../../shared/model-environment';
import { lineLogger, processLogger } from '../../logging/logger';
import { exposeInSandbox, modelCodeCommand, type SandboxUser } from '../../sandbox/sandbox';

/** How to start a replica of a deployment. */
export interface ReplicaSpec {
  deploymentId: string;
  kind: 'published' | 'development';
  python: string;
  packageDir: string;
  /** The code revision in packageDir (development deployments move to newer ones by reloading). */
  revision: number;
  environment: Record<string, string>;
  /** The secrets config.yaml declares: their values are read when the replica starts, never kept in the spec. */
  secretNames?: string[];
  logsDir: string;
  /** The sandbox the replica runs in, as its model's uid (undefined: model isolation is off or unavailable). */
  sandbox?: SandboxUser;
}

/** Where a replica process is in its life. */
export type ReplicaPhase = 'STARTING' | 'READY' | 'UNHEALTHY' | 'DRAINING' | 'EXITED';

/** How a replica process ended. */
export interface ReplicaExit {
  description: string;
  /** The error the model server reported before exiting (load() or import failed). */
  error?: string;
}

/** Timings of health checking and stopping; tests shorten them. */
export interface ReplicaTimings {
  healthIntervalMs: number;
  /** Failed health checks in a row after which a ready replica leaves routing. */
  unhealthyAfter: number;
  /** Failed health checks in a row after which the process is killed (and so restarted), as a liveness probe does. */
  killAfter: number;
  /** How long SIGTERM may take before SIGKILL. */
  terminateGraceMs: number;
}

/** Production timings. */
export const DEFAULT_REPLICA_TIMINGS: ReplicaTimings = { healthIntervalMs: 1000, unhealthyAfter: 3, killAfter: 15, terminateGraceMs: 15_000 };

interface ServerEvent {
  event: string;
  port?: number;
  error?: string;
  load_seconds?: number;
}

/** How a live reload went. */
export type ReloadOutcome = { ok: true; seconds: number } | { ok: false; error: string };

/**
 * How long a draining replica waits before it trusts its count of requests in flight: the
 * gateway thread's routing change and its next demand report (every 100 ms) both arrive by then.
 */
const DRAIN_SETTLE_MS = 300;

/** A running model-server process. */
export class ReplicaProcess {
  phase: ReplicaPhase = 'STARTING';
  port: number | undefined;
  /** Requests the gateway has in flight on this replica. */
  inFlight = 0;
  readonly startedAt = new Date();
  readyAt: Date | undefined;
  exit: ReplicaExit | undefined;
  /** The error the server reported (load_failed / import_failed), if any. */
  reportedError: string | undefined;
  /** Keep-alive connections to this replica. */
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  private readonly child: ChildProcess;
  private healthTimer: NodeJS.Timeout | undefined;
  private failedChecks = 0;
  private readonly exited: Promise<void>;
  private pendingLog: string[] = [];
  private logTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly spec: ReplicaSpec,
    private readonly timings: ReplicaTimings,
    private readonly onChange: (replica: ReplicaProcess) => void,
    /** Where failures of the replica's own upkeep (writing its log, a health check) are told. */
    private readonly nodeLog: (line: string) => void = lineLogger(processLogger()),
    /** The values of the secrets the spec declares, written once to the server's standard input. */
    secrets: Record<string, string> = {},
  ) {
    const serverArgs = ['-u', MODEL_SERVER_SCRIPT, 'serve', '--package', spec.packageDir, '--host', '127.0.0.1', '--port', '0', '--kind', spec.kind, '--secrets-stdin'];
    const sandbox = spec.sandbox;
    // In the sandbox, the launcher replaces itself with the server (same pid and process group),
    // which sees its package and environment read-only and nothing else of GANTRY_HOME.
    const command = modelCodeCommand(
      sandbox,
      { readOnly: [spec.packageDir, path.dirname(path.dirname(spec.python))], cwd: spec.packageDir },
      spec.python,
      serverArgs,
      modelEnvironment(process.env, spec.environment, {
        GANTRY_EVENTS_FD: '3',
        PYTHONDONTWRITEBYTECODE: '1',
        GANTRY_REPLICA_ID: id,
        GANTRY_NODE_PID: String(process.pid),
      }),
    );
    this.child = spawn(command.command, command.args, {
      cwd: spec.packageDir,
      env: command.env,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      // Its own process group (the server leads it): a Ctrl-C in the terminal reaches the node, which
      // stops replicas in order, and every signal the node sends reaches what the model started too.
      detached: true,
    });
    // Secrets go through a pipe, once, then it is closed: never argv, the environment, a file or a log.
    // A process that died at once makes this EPIPE, which its exit reports better.
    this.child.stdin?.on('error', () => undefined);
    this.child.stdin?.end(`${JSON.stringify({ secrets })}\n`);
    this.log([`starting replica ${id} (pid ${this.child.pid ?? '?'})`]);
    this.pipeLines(this.child.stdout!);
    this.pipeLines(this.child.stderr!);
    const events = new LineSplitter();
    (this.child.stdio[3] as Readable).on('data', (chunk: Buffer) => {
      for (const line of events.push(chunk)) this.onEvent(line);
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.markExited({ description: `could not start: ${error.message}`, error: error.message });
        resolve();
      });
      this.child.once('exit', (code, signal) => {
        // Whatever the model started (a forked worker, a subprocess from load()) dies with it.
        this.killGroup();
        this.markExited({ description: signal ? `signal ${signal}` : `exit ${code}`, error: this.reportedError });
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the gateway may send requests to this replica. */
  get routable(): boolean {
    return this.phase === 'READY';
  }

  private pipeLines(stream: Readable): void {
    const splitter = new LineSplitter();
    stream.on('data', (chunk: Buffer) => this.log(splitter.push(chunk)));
    stream.on('end', () => this.log(splitter.flush()));
  }

  /** Buffers log lines briefly so a chatty model does not cost a write per line. */
  private log(lines: string[]): void {
    if (lines.length === 0) return;
    this.pendingLog.push(...lines);
    if (!this.logTimer) this.logTimer = setTimeout(() => this.flushLog(), 100);
  }

  private flushLog(): void {
    if (this.logTimer) clearTimeout(this.logTimer);
    this.logTimer = undefined;
    const lines = this.pendingLog;
    this.pendingLog = [];
    try {
      appendLog(this.spec.logsDir, this.spec.deploymentId, `replica-${this.id}`, lines);
    } catch (error) {
      // A full or failing disk costs log lines, never the replica (nor the node).
      this.nodeLog(`replica ${this.id}: writing ${lines.length} log lines failed (dropped): ${(error as Error).message}`);
    }
  }

  private onEvent(line: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(line) as ServerEvent;
    } catch {
      return;
    }
    if (event.event === 'listening' && event.port) {
      this.port = event.port;
      this.scheduleHealthCheck(0);
    } else if (event.event === 'load_failed' || event.event === 'import_failed') {
      this.reportedError = `${event.event === 'load_failed' ? 'load() raised' : 'import failed'}: ${event.error ?? 'unknown error'}`;
      this.onChange(this);
    }
  }

  private scheduleHealthCheck(delayMs: number): void {
    if (this.phase === 'EXITED' || this.phase === 'DRAINING') return;
    this.healthTimer = setTimeout(() => {
      this.checkHealth().catch((error) => {
        this.nodeLog(`replica ${this.id}: health check failed: ${(error as Error).message}`);
        this.scheduleHealthCheck(this.timings.healthIntervalMs);
      });
    }, delayMs);
  }

  private async checkHealth(): Promise<void> {
    const healthy = await this.probe();
    if (this.phase === 'EXITED' || this.phase === 'DRAINING') return;
    if (healthy) {
      this.failedChecks = 0;
      if (this.phase !== 'READY') {
        if (!this.readyAt) this.log([`replica ${this.id} is ready on port ${this.port}`]);
        this.readyAt ??= new Date();
        this.phase = 'READY';
        this.onChange(this);
      }
    } else if (this.readyAt) {
      this.failedChecks++;
      if (this.phase === 'READY' && this.failedChecks >= this.timings.unhealthyAfter) {
        this.log([`replica ${this.id} failed ${this.failedChecks} health checks: out of routing until it recovers`]);
        this.phase = 'UNHEALTHY';
        this.onChange(this);
      }
      if (this.failedChecks >= this.timings.killAfter) {
        this.log([`replica ${this.id} failed ${this.failedChecks} health checks in a row: killing it to restart it`]);
        this.reportedError = undefined;
        this.signal('SIGKILL');
        return;
      }
    }
    // Before the first ready, check often so a fast load is noticed at once.
    this.scheduleHealthCheck(this.readyAt ? this.timings.healthIntervalMs : Math.min(200, this.timings.healthIntervalMs));
  }

  private probe(): Promise<boolean> {
    return new Promise((resolve) => {
      const request = http.get({ host: '127.0.0.1', port: this.port, path: '/health', agent: this.agent, timeout: 2000 }, (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      });
      request.once('timeout', () => request.destroy());
      request.once('error', () => resolve(false));
    });
  }

  private markExited(exit: ReplicaExit): void {
    if (this.phase === 'EXITED') return;
    const wasDraining = this.phase === 'DRAINING';
    this.phase = 'EXITED';
    this.exit = exit;
    if (this.healthTimer) clearTimeout(this.healthTimer);
    this.agent.destroy();
    this.log([`replica ${this.id} ${wasDraining ? 'stopped' : 'exited'} (${exit.description})`]);
    this.flushLog();
    this.onChange(this);
  }

  /**
   * Takes the replica out of routing, lets in-flight requests finish (up to `drainMs`),
   * then sends SIGTERM (the server drains too) and SIGKILL after the grace period.
   */
  async stop(drainMs: number): Promise<void> {
    if (this.phase === 'EXITED') return;
    if (this.phase !== 'DRAINING') {
      this.phase = 'DRAINING';
      if (this.healthTimer) clearTimeout(this.healthTimer);
      this.onChange(this);
      const drainDeadline = Date.now() + drainMs;
      // The gateway (its own thread) learns of the drain by a message, and reports its requests in
      // flight at most every 100 ms: a request it sent here just before is counted only after that.
      await delay(DRAIN_SETTLE_MS);
      while (this.inFlight > 0 && Date.now() < drainDeadline) await delay(50);
      this.signal('SIGTERM');
    }
    const killTimer = setTimeout(() => this.signal('SIGKILL'), this.timings.terminateGraceMs);
    await this.exited;
    clearTimeout(killTimer);
  }

  /**
   * Loads a newer revision into the running process (development replicas): the model
   * server imports and loads it with `secrets`, and keeps the old code serving if that fails.
   */
  async reload(spec: ReplicaSpec, secrets: Record<string, string> = {}): Promise<ReloadOutcome> {
    // A new revision is a new directory: the replica's sandbox is shown it before it loads it.
    const sandbox = this.spec.sandbox;
    if (this.phase === 'EXITED') return { ok: false, error: 'the replica has exited' };
    if (sandbox && this.child.pid !== undefined) {
      try {
        await exposeInSandbox(sandbox.sandbox, this.child.pid, spec.packageDir);
      } catch (error) {
        const message = (error as Error).message;
        this.log([`replica ${this.id} kept its code: revision ${spec.revision} could not be shown to it: ${message}`]);
        return { ok: false, error: message };
      }
    }
    return this.requestReload(spec, secrets);
  }

  private requestReload(spec: ReplicaSpec, secrets: Record<string, string>): Promise<ReloadOutcome> {
    // The new revision's secrets travel in the request body over loopback, never into a log line.
    const body = JSON.stringify({ package: spec.packageDir, environment_variables: spec.environment, secrets });
    return new Promise((resolve) => {
      const request = http.request(
        {
          host: '127.0.0.1',
          port: this.port,
          path: '/reload',
          method: 'POST',
          agent: this.agent,
          timeout: 600_000,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            let answer: { reloaded?: boolean; load_seconds?: number; error?: string } = {};
            try {
              answer = JSON.parse(Buffer.concat(chunks).toString());
            } catch {
              // reported below
            }
            if (response.statusCode === 200 && answer.reloaded) {
              this.log([`replica ${this.id} reloaded revision ${spec.revision} in ${(answer.load_seconds ?? 0).toFixed(2)} s`]);
              resolve({ ok: true, seconds: answer.load_seconds ?? 0 });
            } else {
              const error = answer.error ?? `reload answered ${response.statusCode}`;
              this.log([`replica ${this.id} kept its code: revision ${spec.revision} failed to load: ${error}`]);
              resolve({ ok: false, error });
            }
          });
        },
      );
      request.once('timeout', () => request.destroy(new Error('the reload timed out')));
      request.once('error', (error) => resolve({ ok: false, error: `reload request failed: ${error.message}` }));
      request.end(body);
    });
  }

  /** Resolves when the process has ended. */
  waitForExit(): Promise<void> {
    return this.exited;
  }

  /** Signals the replica's whole process group: the server and every process the model started. */
  private signal(signal: NodeJS.Signals): void {
    if (this.phase === 'EXITED' || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Kills what is left in the replica's process group once the server has exited. */
  private killGroup(): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // nothing left in the group
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
