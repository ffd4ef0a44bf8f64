/**
 * The faults a chaos run injects, and the bookkeeping around them: SIGKILL of a supervised
 * process (worker, API, node, Temporal dev server) with a check that the supervisor really
 * restarts it, the windows during which the node (hence the gateway) was down, and
 * `temporal workflow terminate|cancel` on Gantry's workflows.
 */
import { isListening } from '../../src/temporal/connection';
import { temporalDevServerPids } from '../helpers/processes';
import type { TestStack } from '../helpers/stack';
import { temporalWorkflowCommand } from './workflows';

/** Every kind of fault, as the report names them. */
export const FAULT_KINDS = [
  'kill worker',
  'kill api',
  'kill node',
  'kill temporal',
  'terminate promotion',
  'cancel promotion',
  'terminate deploy',
  'cancel deploy',
  'terminate development update',
  'cancel development update',
] as const;
/** A kind of fault. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The process kills among the fault kinds. */
export const PROCESS_KILLS: readonly FaultKind[] = ['kill worker', 'kill api', 'kill node', 'kill temporal'];

/** Whether a fault kind is a SIGKILL of a process (rather than a Temporal CLI command). */
export function isProcessKill(kind: FaultKind): boolean {
  return PROCESS_KILLS.includes(kind);
}

/** What an attempt to inject a fault did. */
export interface FaultOutcome {
  kind: FaultKind;
  /** False when there was nothing to hit (the process was restarting, the workflow had already closed). */
  landed: boolean;
  /** What was hit (a pid, a workflow id), or why the fault missed. */
  detail: string;
  /** When it was injected (ms since the epoch). */
  at: number;
}

/** A period during which the node was down: from its SIGKILL until its gateway's /healthz answered again. */
export interface DownWindow {
  from: number;
  /** undefined while the gateway has not answered yet. */
  to?: number;
}

/** A killed process the supervisor must bring back. */
interface PendingRestart {
  kind: FaultKind;
  killedPid: number;
  back: Promise<string | undefined>;
}

/** The supervisor's children that the kills other than Temporal's hit. */
const SUPERVISED_CHILDREN: Partial<Record<FaultKind, 'api' | 'node' | 'worker'>> = { 'kill worker': 'worker', 'kill api': 'api', 'kill node': 'node' };

/** How long a killed process may take to come back (the supervisor's backoff reaches 30 s). */
export const RESTART_DEADLINE_MS = 120_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + needle.length)) n++;
  return n;
}

/** Injects faults into one stack and keeps track of what they did. */
export class FaultInjector {
  /** When the node was down. */
  readonly nodeDownWindows: DownWindow[] = [];
  private pending: PendingRestart[] = [];

  constructor(private readonly stack: TestStack) {}

  /** The pid of a supervised process, waiting a little if it is between a death and its restart. */
  private async pidOf(kind: FaultKind): Promise<number | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        if (kind === 'kill temporal') {
          const { server } = temporalDevServerPids(this.stack);
          if (server) return server;
        } else {
          const child = SUPERVISED_CHILDREN[kind];
          if (child) return this.stack.childPid(child);
        }
      } catch {
        // not running right now
      }
      await sleep(250);
    }
    return undefined;
  }

  /** SIGKILLs the process the fault names and starts watching for its restart. */
  async kill(kind: FaultKind): Promise<FaultOutcome> {
    const pid = await this.pidOf(kind);
    const at = Date.now();
    if (!pid) return { kind, landed: false, detail: 'the process was not running (still restarting)', at };
    const workerStarts = count(this.stack.log, 'worker polling task queue');
    const window: DownWindow = { from: Date.now() };
    try {
      process.kill(pid, 'SIGKILL');
    } catch (error) {
      return { kind, landed: false, detail: `kill ${pid}: ${(error as Error).message}`, at };
    }
    if (kind === 'kill node') this.nodeDownWindows.push(window);
    const back = this.awaitRestart(kind, pid, workerStarts, window);
    back.catch(() => undefined);
    this.pending.push({ kind, killedPid: pid, back });
    return { kind, landed: true, detail: `pid ${pid}`, at: window.from };
  }

  /** Resolves when the killed process is back (undefined), or with why it is not after RESTART_DEADLINE_MS. */
  private async awaitRestart(kind: FaultKind, killedPid: number, workerStartsBefore: number, window: DownWindow): Promise<string | undefined> {
    const deadline = Date.now() + RESTART_DEADLINE_MS;
    while (Date.now() < deadline) {
      switch (kind) {
        case 'kill node':
          if (await httpOk(`${this.stack.gatewayUrl}/healthz`)) {
            window.to = Date.now();
            return undefined;
          }
          break;
        case 'kill api':
          if (await httpOk(`${this.stack.apiUrl}/healthz`)) return undefined;
          break;
        case 'kill worker':
          if (count(this.stack.log, 'worker polling task queue') > workerStartsBefore) return undefined;
          break;
        case 'kill temporal': {
          const { server } = temporalDevServerPids(this.stack);
          if (server && server !== killedPid && (await isListening(this.stack.env.TEMPORAL_ADDRESS!))) return undefined;
          break;
        }
        default:
          return undefined;
      }
      await sleep(kind === 'kill node' ? 50 : 250);
    }
    return `the supervisor did not bring the ${kind.slice(5)} back within ${RESTART_DEADLINE_MS / 1000} s after SIGKILL of pid ${killedPid}`;
  }

  /** Waits for every killed process to be back; returns the ones that did not come back, with why. */
  async awaitRestarts(): Promise<string[]> {
    const pending = this.pending.splice(0);
    const outcomes = await Promise.all(pending.map((p) => p.back));
    return outcomes.filter((outcome): outcome is string => outcome !== undefined);
  }

  /** Runs `temporal workflow terminate|cancel` on a workflow. */
  async workflowFault(kind: FaultKind, workflowId: string): Promise<FaultOutcome> {
    const at = Date.now();
    const command = kind.startsWith('terminate') ? 'terminate' : 'cancel';
    const outcome = await temporalWorkflowCommand(this.stack, command, workflowId);
    return { kind, landed: outcome.ok, detail: outcome.ok ? workflowId : `${workflowId}: ${outcome.output.split('\n').at(-1)}`, at };
  }

  /** Whether a moment (ms since the epoch) falls in a node-down window. */
  nodeDownBetween(from: number, to: number): boolean {
    return this.nodeDownWindows.some((w) => from <= (w.to ?? Infinity) && to >= w.from);
  }
}
