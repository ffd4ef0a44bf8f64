/** What a chaos run found, and its Markdown tables (to paste into the README). */
import type { Sample } from '../../bench/loadgen';
import { FAULT_KINDS, type FaultKind } from './faults';
import { errorCode, INVARIANTS } from './invariants';

/** An invariant that still did not hold at a round's deadline (reported once, however long it lasts). */
export interface Violation {
  invariant: number;
  key: string;
  /** The round after which it was first seen (0: setup or the final check). */
  round: number;
  description: string;
  /** Whether it was still there at the final check of the run. */
  stillPresentAtEnd: boolean;
}

/** One round: an operation with a fault at a random moment. */
export interface RoundRecord {
  index: number;
  /** push, promotion or development. */
  operation: string;
  fault: FaultKind;
  landed: boolean;
  /** What the fault hit, or why it missed. */
  faultDetail: string;
  /** What the operation did (its outcome). */
  summary: string;
  startedAt: number;
  endedAt: number;
}

/** Failed requests of the steady load, by cause. */
export interface RequestTally {
  sent: number;
  ok: number;
  /** Ticks the load generator skipped because 64 requests were already in flight. */
  skipped: number;
  nodeDown: Record<string, number>;
  nodeUp: Record<string, number>;
}

/** The outcome of a chaos run. */
export interface ChaosReport {
  seed: number;
  faultsAsked: number;
  rounds: RoundRecord[];
  faults: Record<FaultKind, { landed: number; missed: number }>;
  violations: Violation[];
  requests: RequestTally;
  /** Promotion control actions sent by the rounds: action → answer status → count. */
  actions: Record<string, Record<string, number>>;
  /** Outcomes of the operations: e.g. "push → ACTIVE", "promotion → CANCELED", "development → reloaded". */
  operations: Record<string, number>;
  /** Harness calls that found the API down or unavailable and were retried. */
  harnessRetries: number;
  /** The stack's home, when it was kept. */
  keptHome?: string;
}

/** An empty tally of faults by kind. */
export function emptyFaultTally(): Record<FaultKind, { landed: number; missed: number }> {
  return Object.fromEntries(FAULT_KINDS.map((kind) => [kind, { landed: 0, missed: 0 }])) as Record<FaultKind, { landed: number; missed: number }>;
}

/** The cause of a failed request: status and error code, or the network error. */
export function failureCause(sample: Sample): string {
  if (sample.status === 0) {
    const code = /\bE[A-Z]{3,}\b/.exec(sample.error ?? '')?.[0];
    return `no answer: ${code ?? sample.error ?? 'unknown'}`;
  }
  const code = errorCode(sample.error);
  return code ? `${sample.status} ${code}` : String(sample.status);
}

/** Adds one to a counter in a record. */
export function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

const escapeCell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The report as Markdown: faults by kind, violations by invariant (each with one line), failed requests by cause. */
export function formatReport(report: ChaosReport): string {
  const lines: string[] = [];
  const landed = Object.values(report.faults).reduce((sum, f) => sum + f.landed, 0);
  const missed = Object.values(report.faults).reduce((sum, f) => sum + f.missed, 0);
  lines.push(
    `Chaos run: seed ${report.seed}, ${report.rounds.length} rounds, ${landed} faults injected (${missed} missed: nothing to hit at that moment), ${report.violations.length} invariant violations.`,
  );
  lines.push('');
  lines.push('| fault | injected | missed |', '|---|---|---|');
  for (const kind of FAULT_KINDS) {
    const tally = report.faults[kind];
    if (tally.landed + tally.missed > 0) lines.push(`| ${kind} | ${tally.landed} | ${tally.missed} |`);
  }
  lines.push(`| **total** | **${landed}** | **${missed}** |`);
  lines.push('');

  lines.push('| invariant | violations | still at the end |', '|---|---|---|');
  for (const [number, text] of Object.entries(INVARIANTS)) {
    const found = report.violations.filter((v) => v.invariant === Number(number));
    lines.push(`| ${number}. ${text} | ${found.length} | ${found.filter((v) => v.stillPresentAtEnd).length} |`);
  }
  lines.push('');
  if (report.violations.length > 0) {
    lines.push('| # | round | invariant | violation |', '|---|---|---|---|');
    report.violations.forEach((v, i) => {
      const round = report.rounds.find((r) => r.index === v.round);
      const context = round ? `${v.round} (${round.fault} during ${round.operation})` : v.round === 0 ? 'setup/end' : String(v.round);
      lines.push(`| ${i + 1} | ${escapeCell(context)} | ${v.invariant} | ${escapeCell(v.description)}${v.stillPresentAtEnd ? ' (still at the end)' : ''} |`);
    });
    lines.push('');
  }

  const { requests } = report;
  const failedDown = Object.values(requests.nodeDown).reduce((a, b) => a + b, 0);
  const failedUp = Object.values(requests.nodeUp).reduce((a, b) => a + b, 0);
  lines.push(`Steady load: ${requests.sent} requests sent, ${requests.ok} answered 2xx, ${failedDown + failedUp} failed, ${requests.skipped} ticks skipped (64 in flight).`);
  lines.push('');
  lines.push('| failed requests by cause | node down | node up (violation) |', '|---|---|---|');
  const causes = [...new Set([...Object.keys(requests.nodeDown), ...Object.keys(requests.nodeUp)])].sort();
  for (const cause of causes) lines.push(`| ${escapeCell(cause)} | ${requests.nodeDown[cause] ?? 0} | ${requests.nodeUp[cause] ?? 0} |`);
  lines.push(`| **total** | **${failedDown}** | **${failedUp}** |`);
  lines.push('');

  lines.push('| operation → outcome | count |', '|---|---|');
  for (const [operation, n] of Object.entries(report.operations).sort()) lines.push(`| ${escapeCell(operation)} | ${n} |`);
  lines.push('');
  lines.push('| control action | answers |', '|---|---|');
  for (const [action, answers] of Object.entries(report.actions).sort()) {
    lines.push(
      `| ${action} | ${Object.entries(answers)
        .map(([status, n]) => `${status}: ${n}`)
        .join(', ')} |`,
    );
  }
  lines.push('');
  lines.push(`Harness calls retried while the API or Temporal was down: ${report.harnessRetries}.${report.keptHome ? ` Stack home kept in ${report.keptHome}.` : ''}`);
  return lines.join('\n');
}
