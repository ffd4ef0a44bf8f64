/**
 * The bench's arithmetic and output, apart from any process: combining simultaneous clients,
 * picking the median round, the Markdown tables, and issue 11's two targets evaluated per row,
 * for the gateway and, as the bench's calibration, for a second nginx identical to the first.
 */
import type { LoadResult } from './load-client';

/** The paths a request can take to a replica: `twin` is a second nginx, configured as the first (the bench's calibration). */
export type PathName = 'direct' | 'gateway' | 'nginx' | 'twin';

/** A path held to issue 11's targets against nginx. */
export type CandidatePath = 'gateway' | 'twin';

/** Each path's name in the tables and verdicts. */
const PATH_LABELS: Record<PathName, string> = { direct: 'direct', gateway: 'gateway', nginx: 'nginx', twin: 'second nginx' };

/** The median-round results of one replica count and connection count, by path (nginx absent when not installed). */
export interface Row {
  replicas: number;
  connections: number;
  results: Partial<Record<PathName, LoadResult>>;
}

/** How far above nginx's added p50 the gateway's may be at 1 connection (issue 11), in milliseconds. */
export const ADDED_P50_TOLERANCE_MS = 0.05;

/**
 * One result from clients that ran at the same time (one per replica): requests and req/s are
 * summed; p50 and p99 are the request-weighted means of the clients' percentiles.
 */
export function combineSimultaneous(parts: LoadResult[]): LoadResult {
  if (parts.length === 0) throw new Error('no client results to combine');
  const requests = parts.reduce((sum, part) => sum + part.requests, 0);
  const weighted = (pick: (part: LoadResult) => number): number => parts.reduce((sum, part) => sum + pick(part) * part.requests, 0) / requests;
  return {
    requests,
    requestsPerSecond: parts.reduce((sum, part) => sum + part.requestsPerSecond, 0),
    p50Ms: weighted((part) => part.p50Ms),
    p99Ms: weighted((part) => part.p99Ms),
  };
}

/** The round with the median throughput (the lower middle one for an even count): its figures, all from that one round. */
export function medianRound(rounds: LoadResult[]): LoadResult {
  if (rounds.length === 0) throw new Error('no rounds');
  const sorted = [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** How `connections` are split over `replicas` replicas for the direct path: as evenly as possible, none for a replica when there are fewer connections than replicas. */
export function splitConnections(connections: number, replicas: number): number[] {
  return Array.from({ length: replicas }, (_, index) => Math.floor(connections / replicas) + (index < connections % replicas ? 1 : 0)).filter((share) => share > 0);
}

/** Throughput of `path` over direct's in the row, or undefined when either is missing. */
export function throughputRatio(row: Row, path: Exclude<PathName, 'direct'>): number | undefined {
  const measured = row.results[path];
  const direct = row.results.direct;
  return measured && direct ? measured.requestsPerSecond / direct.requestsPerSecond : undefined;
}

/** The p50 that `path` adds to direct's in the row, in milliseconds, or undefined when either is missing. */
export function addedP50(row: Row, path: Exclude<PathName, 'direct'>): number | undefined {
  const measured = row.results[path];
  const direct = row.results.direct;
  return measured && direct ? measured.p50Ms - direct.p50Ms : undefined;
}

/** A target's verdict on one row. */
export interface Verdict {
  target: string;
  replicas: number;
  connections: number;
  /** undefined: the row cannot say (nginx absent, or latencies too coarse to compare). */
  met: boolean | undefined;
  detail: string;
}

/**
 * Issue 11's targets on each row, for `candidate` (the gateway, or the second nginx as the
 * calibration): at 1 connection its added p50 is within ADDED_P50_TOLERANCE_MS of nginx's; at
 * every concurrency candidate/direct ≥ nginx/direct. `latencyResolutionMs` is the client's
 * latency resolution: when it is coarser than the tolerance, the latency target cannot be decided.
 */
export function evaluateTargets(rows: Row[], latencyResolutionMs: number, candidate: CandidatePath = 'gateway'): Verdict[] {
  const label = PATH_LABELS[candidate];
  const name = `the ${label}`;
  const verdicts: Verdict[] = [];
  for (const row of rows) {
    const where = { replicas: row.replicas, connections: row.connections };
    const missing = row.results[candidate] === undefined ? `${name} was not measured` : 'nginx was not measured';
    if (row.connections === 1) {
      const target = `at 1 connection ${name}'s added p50 is within ${ADDED_P50_TOLERANCE_MS} ms of nginx's`;
      const added = addedP50(row, candidate);
      const nginx = addedP50(row, 'nginx');
      if (added === undefined || nginx === undefined) verdicts.push({ target, ...where, met: undefined, detail: missing });
      else if (latencyResolutionMs > ADDED_P50_TOLERANCE_MS)
        verdicts.push({ target, ...where, met: undefined, detail: `the client's latencies are in steps of ${latencyResolutionMs} ms, coarser than ${ADDED_P50_TOLERANCE_MS} ms` });
      else {
        const over = added - nginx;
        verdicts.push({
          target,
          ...where,
          met: over <= ADDED_P50_TOLERANCE_MS + 1e-9,
          detail: `${label} +${ms(added)} ms, nginx +${ms(nginx)} ms: ${name} adds ${ms(Math.abs(over))} ms ${over >= 0 ? 'more' : 'less'}`,
        });
      }
    }
    const target = `${label}/direct ≥ nginx/direct`;
    const ratio = throughputRatio(row, candidate);
    const nginx = throughputRatio(row, 'nginx');
    if (ratio === undefined || nginx === undefined) verdicts.push({ target, ...where, met: undefined, detail: missing });
    else verdicts.push({ target, ...where, met: ratio >= nginx, detail: `${ratio.toFixed(2)} vs ${nginx.toFixed(2)}` });
  }
  return verdicts;
}

/** "met 3 of 8 targets" (those not evaluated left out of the count, and said). */
export function verdictSummary(verdicts: Verdict[]): string {
  const evaluated = verdicts.filter((verdict) => verdict.met !== undefined);
  const met = evaluated.filter((verdict) => verdict.met).length;
  const skipped = verdicts.length - evaluated.length;
  return `met ${met} of ${evaluated.length} targets${skipped > 0 ? ` (${skipped} not evaluated)` : ''}`;
}

/** Milliseconds with two decimals (the resolution wrk prints below 10 ms). */
function ms(value: number): string {
  return value.toFixed(2);
}

/** A req/s figure with thousands separators. */
function rate(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** A table's empty cell. */
function cell(value: number | undefined, format: (n: number) => string): string {
  return value === undefined ? '–' : format(value);
}

/** An added latency with its sign. */
function signed(value: number): string {
  return `${value >= 0 ? '+' : '−'}${ms(Math.abs(value))}`;
}

/** The results table in Markdown, `candidate` beside direct and nginx (the gateway; the second nginx for the calibration): one line per replica count and connection count. */
export function markdownTable(rows: Row[], candidate: CandidatePath = 'gateway'): string {
  const paths: PathName[] = ['direct', candidate, 'nginx'];
  const label = PATH_LABELS[candidate];
  const header = [
    'replicas',
    'connections',
    ...paths.map((p) => `${PATH_LABELS[p]} req/s`),
    ...paths.map((p) => `${PATH_LABELS[p]} p50 / p99 ms`),
    `${label}/direct`,
    'nginx/direct',
    `added p50 ${label} ms`,
    'added p50 nginx ms',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) {
    const cells = [
      String(row.replicas),
      String(row.connections),
      ...paths.map((p) => cell(row.results[p]?.requestsPerSecond, rate)),
      ...paths.map((p) => {
        const result = row.results[p];
        return result ? `${ms(result.p50Ms)} / ${ms(result.p99Ms)}` : '–';
      }),
      cell(throughputRatio(row, candidate), (n) => n.toFixed(2)),
      cell(throughputRatio(row, 'nginx'), (n) => n.toFixed(2)),
      cell(addedP50(row, candidate), signed),
      cell(addedP50(row, 'nginx'), signed),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The verdicts as lines: "met" / "not met" / "not evaluated", with the numbers. */
export function verdictLines(verdicts: Verdict[]): string[] {
  return verdicts.map((verdict) => {
    const outcome = verdict.met === undefined ? 'not evaluated' : verdict.met ? 'met' : 'NOT MET';
    return `- ${verdict.target}, ${verdict.replicas} replica${verdict.replicas === 1 ? '' : 's'}, ${verdict.connections} connection${verdict.connections === 1 ? '' : 's'}: ${outcome} (${verdict.detail})`;
  });
}
