import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAutocannonJson, parseWrkDuration, parseWrkOutput, wrkScript } from '../../bench/load-client';
import { callgrindTotal, parseInstructionBenchOptions } from '../../bench/instructions';
import { framedMessageEnd } from '../../bench/node-forwarder';
import { PROJECT_ROOT } from '../../src/shared/project-paths';

/** A captured client output (test/fixtures/bench/README.md says how each was made). */
const sample = (name: string): string => fs.readFileSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'bench', name), 'utf8');

describe("the bench's wrk parser", () => {
  it('reads durations in every unit wrk prints, in milliseconds', () => {
    assert.equal(parseWrkDuration('86.00us'), 0.086);
    assert.equal(parseWrkDuration('4.03ms'), 4.03);
    assert.equal(parseWrkDuration('1.20s '), 1200);
    assert.equal(parseWrkDuration('2.00m'), 120_000);
    assert.equal(parseWrkDuration('1.00h'), 3_600_000);
    for (const text of ['', '4.03', 'ms', '-1ms', '4.03 ms', '4.03ns', '-nan%']) assert.throws(() => parseWrkDuration(text), /not a duration/, text);
  });

  it('reads req/s, p50 and p99 from --latency outputs in us, ms and s', () => {
    assert.deepEqual(parseWrkOutput(sample('wrk-ok.txt')), { requests: 18282, requestsPerSecond: 9138.65, p50Ms: 0.086, p99Ms: 3.62 });
    assert.deepEqual(parseWrkOutput(sample('wrk-ms.txt')), { requests: 3865, requestsPerSecond: 1932, p50Ms: 4.03, p99Ms: 8.19 });
    assert.deepEqual(parseWrkOutput(sample('wrk-seconds.txt')), { requests: 6, requestsPerSecond: 1.5, p50Ms: 1200, p99Ms: 1220 });
    const gatewayWithoutItsTimeout = sample('wrk-gateway-timeout.txt').replace(/^\s*Socket errors:.*\n/m, '');
    assert.deepEqual(parseWrkOutput(gatewayWithoutItsTimeout), { requests: 633, requestsPerSecond: 300.4, p50Ms: 109.21, p99Ms: 1520 });
  });

  it('fails on answers with an error status, on socket errors and on a run with no answer', () => {
    assert.throws(() => parseWrkOutput(sample('wrk-non2xx.txt')), /19263 answers with status >= 400/);
    assert.throws(() => parseWrkOutput(sample('wrk-socket-errors.txt')), /socket errors: connect 0, read 938, write 0, timeout 0/);
    assert.throws(() => parseWrkOutput(sample('wrk-gateway-timeout.txt')), /socket errors: connect 0, read 0, write 0, timeout 1/);
    assert.throws(() => parseWrkOutput(sample('wrk-timeouts.txt')), /no request was answered/);
  });

  it('fails when the latency distribution (no --latency) or the totals are missing', () => {
    const withoutDistribution = sample('wrk-ms.txt').replace(/ {2}Latency Distribution\n(.*%.*\n)+/, '');
    assert.throws(() => parseWrkOutput(withoutDistribution), /no 50% line/);
    assert.throws(() => parseWrkOutput(sample('wrk-ms.txt').replace(/^Requests\/sec:.*$/m, '')), /no request count or Requests\/sec/);
    assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:9199 Connection refused'), /wrk:/);
  });

  it('writes a Lua script that POSTs the body with the headers, quotes escaped', () => {
    const script = wrkScript('{"text":"a\\b"}', { Authorization: 'Api-Key k"1' });
    assert.equal(script, ['wrk.method = "POST"', 'wrk.body = "{\\"text\\":\\"a\\\\b\\"}"', 'wrk.headers["Authorization"] = "Api-Key k\\"1"', ''].join('\n'));
  });
});

describe("the bench's autocannon parser", () => {
  it("reads req/s (answers over the run's duration), p50 and p99 in milliseconds", () => {
    const result = parseAutocannonJson(sample('autocannon-ms.json'));
    assert.equal(result.requests, 3941);
    assert.equal(result.requestsPerSecond, 3941 / 2.02);
    assert.equal(result.p50Ms, 3);
    assert.equal(result.p99Ms, 7);
    assert.equal(parseAutocannonJson(sample('autocannon-ok.json')).p50Ms, 0, 'whole milliseconds: a fast answer is 0');
  });

  it('fails on non-2xx answers, and on requests sent but never answered beyond one in flight per connection', () => {
    assert.throws(() => parseAutocannonJson(sample('autocannon-non2xx.json')), /non2xx 20414/);
    assert.throws(() => parseAutocannonJson(sample('autocannon-dropped-connections.json')), /789 requests sent but never answered/);
  });

  it('fails on errors, timeouts, output that is not JSON and missing fields', () => {
    const report = JSON.parse(sample('autocannon-ms.json'));
    assert.throws(() => parseAutocannonJson(JSON.stringify({ ...report, errors: 2 })), /errors 2/);
    assert.throws(() => parseAutocannonJson(JSON.stringify({ ...report, timeouts: 1 })), /timeouts 1/);
    assert.throws(() => parseAutocannonJson(`Running 2s test\n${sample('autocannon-ms.json')}`), /not JSON/);
    assert.throws(() => parseAutocannonJson(JSON.stringify({ ...report, latency: {} })), /no latency.p50/);
  });
});

describe("the instruction bench's options and callgrind reader", () => {
  it('reads --requests, --runs and --warmup, with defaults, and refuses anything else', () => {
    assert.deepEqual(parseInstructionBenchOptions([]), { requests: 2000, runs: 5, warmup: 8000 });
    assert.deepEqual(parseInstructionBenchOptions(['--runs', '3', '--requests', '500']), { requests: 500, runs: 3, warmup: 8000 });
    assert.throws(() => parseInstructionBenchOptions(['--rounds', '3']), /unknown option --rounds/);
    for (const bad of ['0', '-1', '1.5', 'x']) assert.throws(() => parseInstructionBenchOptions(['--runs', bad]), /positive whole number/, bad);
  });

  it("reads a dump's total instruction count, and fails on a dump without one", () => {
    const dump =
      '# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 16091\ncmd:  node gw.js\npart: 1\n\nevents: Ir\nsummary: 388865089\n\nfn=(1) main\n0 12\ntotals: 388865089\n';
    assert.equal(callgrindTotal(dump), 388_865_089);
    assert.throws(() => callgrindTotal('events: Ir\n'), /no totals line/);
  });
});

describe("the bare Node forwarder's framing", () => {
  it('finds the end of a message by its Content-Length, and waits for the rest of an incomplete one', () => {
    const request = 'POST /predict HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 5\r\n\r\nhello';
    assert.equal(framedMessageEnd(Buffer.from(request)), request.length);
    assert.equal(framedMessageEnd(Buffer.from(`${request}POST /predict HTTP/1.1\r\n`)), request.length, 'a pipelined message after it is not part of it');
    assert.equal(framedMessageEnd(Buffer.from(request.slice(0, -1))), -1, 'its body is not all there');
    assert.equal(framedMessageEnd(Buffer.from('POST /predict HTTP/1.1\r\nHost: x\r\n')), -1, 'its head is not all there');
    const empty = 'HTTP/1.1 204 No Content\r\nX-Content-Length: 9\r\n\r\n';
    assert.equal(framedMessageEnd(Buffer.from(empty)), empty.length, 'no Content-Length: no body (a header merely ending in the name does not count)');
  });
});
