import { strict as assert } from 'node:assert';
import { parseBenchOptions, roundOrder } from '../../bench/data-plane';
import type { LoadResult } from '../../bench/load-client';
import { combineSimultaneous, evaluateTargets, markdownTable, medianRound, splitConnections, verdictLines, verdictSummary, type Row } from '../../bench/report';

const result = (requestsPerSecond: number, p50Ms: number, p99Ms = p50Ms * 3, requests = requestsPerSecond * 5): LoadResult => ({ requests, requestsPerSecond, p50Ms, p99Ms });

/** A row at `connections` with direct, gateway and nginx results. */
const row = (connections: number, direct: LoadResult, gateway: LoadResult, nginx?: LoadResult): Row => ({
  replicas: 1,
  connections,
  results: { direct, gateway, ...(nginx ? { nginx } : {}) },
});

describe("the bench's targets", () => {
  it("at 1 connection: met when the gateway's added p50 is within 0.05 ms of nginx's, not met beyond", () => {
    const direct = result(4000, 0.25);
    const within = evaluateTargets([row(1, direct, result(3000, 0.34), result(3100, 0.3))], 0.01)[0]!;
    assert.equal(within.met, true, within.detail);
    assert.match(within.detail, /gateway \+0\.09 ms, nginx \+0\.05 ms: the gateway adds 0\.04 ms more/);
    const exactly = evaluateTargets([row(1, direct, result(3000, 0.35), result(3100, 0.3))], 0.01)[0]!;
    assert.equal(exactly.met, true, 'exactly 0.05 ms more is within');
    const beyond = evaluateTargets([row(1, direct, result(3000, 0.36), result(3100, 0.3))], 0.01)[0]!;
    assert.equal(beyond.met, false);
    const faster = evaluateTargets([row(1, direct, result(3000, 0.28), result(3100, 0.3))], 0.01)[0]!;
    assert.equal(faster.met, true);
    assert.match(faster.detail, /adds 0\.02 ms less/);
  });

  it('at every concurrency: met when gateway/direct ≥ nginx/direct, with the two ratios', () => {
    const verdicts = evaluateTargets([row(8, result(4000, 2), result(3600, 2.2), result(3400, 2.4)), row(64, result(4000, 16), result(3000, 20), result(3200, 19))], 0.01);
    assert.deepEqual(
      verdicts.map((verdict) => [verdict.connections, verdict.met, verdict.detail]),
      [
        [8, true, '0.90 vs 0.85'],
        [64, false, '0.75 vs 0.80'],
      ],
    );
  });

  it('is not evaluated without nginx, nor the latency target with whole-millisecond latencies', () => {
    const withoutNginx = evaluateTargets([row(1, result(4000, 0.25), result(3000, 0.3))], 0.01);
    assert.deepEqual(
      withoutNginx.map((verdict) => verdict.met),
      [undefined, undefined],
    );
    const coarse = evaluateTargets([row(1, result(4000, 0), result(3000, 0), result(3100, 0))], 1);
    assert.equal(coarse[0]!.met, undefined);
    assert.match(coarse[0]!.detail, /steps of 1 ms/);
    assert.equal(coarse[1]!.met, false, 'the throughput target needs no latency: 0.75 < 0.78');
    assert.deepEqual(
      verdictLines(coarse).map((line) => line.split(':')[1]!.trim().split(' (')[0]),
      ['not evaluated', 'NOT MET'],
    );
  });
});

describe("the bench's calibration: a second nginx held to the gateway's targets", () => {
  const calibrated = (connections: number, direct: LoadResult, nginx: LoadResult, twin: LoadResult): Row => ({
    replicas: 2,
    connections,
    results: { direct, gateway: result(1000, 9), nginx, twin },
  });
  const rows = [calibrated(1, result(4000, 0.25), result(3000, 0.33), result(2900, 0.4)), calibrated(8, result(8000, 1), result(6000, 1.3), result(6100, 1.3))];

  it('evaluates the twin against nginx as it does the gateway, and counts what it met', () => {
    const verdicts = evaluateTargets(rows, 0.01, 'twin');
    assert.deepEqual(verdictLines(verdicts), [
      "- at 1 connection the second nginx's added p50 is within 0.05 ms of nginx's, 2 replicas, 1 connection: NOT MET (second nginx +0.15 ms, nginx +0.08 ms: the second nginx adds 0.07 ms more)",
      '- second nginx/direct ≥ nginx/direct, 2 replicas, 1 connection: NOT MET (0.72 vs 0.75)',
      '- second nginx/direct ≥ nginx/direct, 2 replicas, 8 connections: met (0.76 vs 0.75)',
    ]);
    assert.equal(verdictSummary(verdicts), 'met 1 of 3 targets');
    assert.equal(verdictSummary(evaluateTargets(rows, 1, 'twin')), 'met 1 of 2 targets (1 not evaluated)');
    assert.equal(verdictSummary(evaluateTargets(rows, 0.01)), 'met 0 of 3 targets', "the gateway's own verdicts are unchanged by the twin");
  });

  it('prints the twin in the table in place of the gateway', () => {
    const lines = markdownTable(rows, 'twin').split('\n');
    assert.equal(
      lines[0],
      '| replicas | connections | direct req/s | second nginx req/s | nginx req/s | direct p50 / p99 ms | second nginx p50 / p99 ms | nginx p50 / p99 ms | second nginx/direct | nginx/direct | added p50 second nginx ms | added p50 nginx ms |',
    );
    assert.equal(lines[2], '| 2 | 1 | 4,000 | 2,900 | 3,000 | 0.25 / 0.75 | 0.40 / 1.20 | 0.33 / 0.99 | 0.72 | 0.75 | +0.15 | +0.08 |');
  });

  it('runs the paths in order in odd rounds and reversed in even ones', () => {
    const paths = ['direct', 'gateway', 'nginx', 'twin'];
    assert.deepEqual(roundOrder(paths, 1), paths);
    assert.deepEqual(roundOrder(paths, 2), ['twin', 'nginx', 'gateway', 'direct']);
    assert.deepEqual(roundOrder(paths, 3), paths);
    assert.deepEqual(paths, ['direct', 'gateway', 'nginx', 'twin'], 'the list itself is left as it was');
  });
});

describe("the bench's arithmetic and table", () => {
  it('combines simultaneous clients: req/s summed, percentiles weighted by requests', () => {
    const combined = combineSimultaneous([result(3000, 1, 4, 15000), result(1000, 2, 8, 5000)]);
    assert.deepEqual(combined, { requests: 20000, requestsPerSecond: 4000, p50Ms: 1.25, p99Ms: 5 });
    assert.throws(() => combineSimultaneous([]), /no client results/);
  });

  it('reports the round with the median throughput, all its figures from that round', () => {
    const rounds = [result(3000, 0.4, 1), result(3500, 0.3, 5), result(2000, 0.6, 2)];
    assert.deepEqual(medianRound(rounds), rounds[0]);
    assert.deepEqual(medianRound([result(2, 1), result(1, 2)]), result(1, 2), 'the lower middle of an even count');
  });

  it('splits connections over replicas evenly, leaving out replicas with none', () => {
    assert.deepEqual(splitConnections(64, 2), [32, 32]);
    assert.deepEqual(splitConnections(8, 3), [3, 3, 2]);
    assert.deepEqual(splitConnections(1, 2), [1]);
    assert.deepEqual(splitConnections(1, 1), [1]);
  });

  it('prints one Markdown row per replica and connection count, with ratios and added p50s', () => {
    const table = markdownTable([
      row(1, result(4050, 0.25, 0.5), result(3900, 0.28, 0.61), result(3120, 0.31, 0.7)),
      { replicas: 2, connections: 8, results: { direct: result(8000, 1), gateway: result(7000, 0.9) } },
    ]);
    const lines = table.split('\n');
    assert.equal(lines.length, 4);
    assert.equal(lines[2], '| 1 | 1 | 4,050 | 3,900 | 3,120 | 0.25 / 0.50 | 0.28 / 0.61 | 0.31 / 0.70 | 0.96 | 0.77 | +0.03 | +0.06 |');
    assert.equal(lines[3], '| 2 | 8 | 8,000 | 7,000 | – | 1.00 / 3.00 | 0.90 / 2.70 | – | 0.88 | – | −0.10 | – |');
  });

  it('reads its options, and refuses unknown or malformed ones', () => {
    assert.deepEqual(parseBenchOptions([]), { rounds: 3, seconds: 5, warmupSeconds: 2, connections: [1, 8, 64], replicas: [1, 2] });
    assert.deepEqual(parseBenchOptions(['--rounds', '1', '--seconds', '2', '--connections', '1,8', '--replicas', '2']), {
      rounds: 1,
      seconds: 2,
      warmupSeconds: 2,
      connections: [1, 8],
      replicas: [2],
    });
    assert.throws(() => parseBenchOptions(['--round', '1']), /unknown option --round/);
    assert.throws(() => parseBenchOptions(['--seconds', 'five']), /positive number/);
    assert.throws(() => parseBenchOptions(['--connections', '1,0']), /positive whole numbers/);
  });
});
