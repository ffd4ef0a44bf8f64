/**
 * The lines the gateway writes per request without pino's serializer, the block-wise log
 * destination of its thread, and the request tallies its metrics are written from: each checked
 * against what the library it stands in for writes for the same input.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Histogram, Registry } from 'prom-client';
import { BatchedDestination } from '../../src/logging/batched-destination';
import { HotPathLines, isoTimeNow, jsonString, spacedJsonString, tenthsText } from '../../src/logging/hot-path-lines';
import { createLogger } from '../../src/logging/logger';
import { GatewayMetrics } from '../../src/metrics/gateway-metrics';
import { InferencePathCache, parseInferencePath } from '../../src/node/gateway/routing-table';
import { eventually } from '../helpers/ports';

describe('hot-path log lines', () => {
  it('writes the line pino writes for the same fields and message: same keys, same order, same values', () => {
    const written: string[] = [];
    const logger = createLogger('node', { level: 'info', destination: { write: (line: string) => void written.push(line) } });
    const fields = { requestId: 'r-1', method: 'POST', path: '/models/m/production/predict?"q"', status: 200, durationMs: 1.5, modelId: 'm', aborted: true };
    logger.info(fields, 'POST /p 200 "quoted" \\ é \u2028');
    const members = Object.entries(fields)
      .map(([key, value]) => `${jsonString(key)}:${typeof value === 'string' ? jsonString(value) : value}`)
      .join(',');
    new HotPathLines(logger).write('info', members, jsonString('POST /p 200 "quoted" \\ é \u2028'));
    assert.equal(written.length, 2);
    assert.ok(written[1]!.endsWith('\n'));
    const [fromPino, fromHotPath] = written.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(Object.keys(fromHotPath!), Object.keys(fromPino!));
    assert.match(String(fromHotPath!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual({ ...fromHotPath, time: '' }, { ...fromPino, time: '' });
  });

  it('honours the logger level: debug lines are not written at info, nothing at silent', () => {
    const written: string[] = [];
    const info = new HotPathLines(createLogger('node', { level: 'info', destination: { write: (line: string) => void written.push(line) } }));
    assert.equal(info.enabled('debug'), false);
    assert.equal(info.enabled('info'), true);
    assert.equal(new HotPathLines(createLogger('node', { level: 'silent', destination: { write: () => undefined } })).enabled('info'), false);
  });

  it("makes the message's JSON from its parts' JSON as JSON.stringify makes it from the whole", () => {
    const parts = ['POST', '', '/p', 'a"b', 'back\\slash', '\u0000\u001f\u007f', 'é\u2028', '\ud83d\ude00', '\ud83d', '\ude00', '/x\ud83d', '\ude00/y'];
    for (const first of parts)
      for (const second of parts)
        for (const last of [200, 499])
          assert.equal(spacedJsonString(jsonString(first), jsonString(second), last), JSON.stringify(`${first} ${second} ${last}`), `${first} | ${second}`);
  });

  it('writes a duration to a tenth as String(Math.round(ms * 10) / 10) does', () => {
    for (const ms of [0, 0.04, 0.05, 0.25, 0.3, 1, 1.45, 9.96, 10, 123.456, 99_999.99, 3_600_000.05, -0.04, -0.25, -1, -12.34])
      assert.equal(tenthsText(ms), String(Math.round(ms * 10) / 10), String(ms));
    for (let i = 0; i < 10_000; i++) {
      const ms = i * 0.0137;
      assert.equal(tenthsText(ms), String(Math.round(ms * 10) / 10), String(ms));
    }
  });

  it('quotes strings as JSON.stringify does', () => {
    for (const value of [
      '',
      'plain',
      'a"b',
      'back\\slash',
      'tab\there',
      'nul\u0000',
      '\u001f',
      'é and 日本',
      'emoji 😀',
      'lone \ud800 high',
      'lone \udfff low',
      '\u2028\u2029',
      '\u007f',
    ])
      assert.equal(jsonString(value), JSON.stringify(value), JSON.stringify(value));
  });

  it('writes the time as toISOString does, milliseconds padded', () => {
    for (const at of [0, 5, 42, 999, 1_000, 1_764_752_000_007, 1_764_752_000_070, 1_764_752_000_700, 1_764_752_059_999])
      assert.equal(isoTimeNow(at), new Date(at).toISOString(), String(at));
  });
});

describe('the gateway thread log destination', () => {
  it('writes every line, in order, in blocks: at the block size, after its delay, and all when drained', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-batched-')), 'log');
    const destination = new BatchedDestination(pino.destination({ dest: file, sync: false, minLength: 64, mkdir: true }), 64, 20);
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i} ${'x'.repeat(i % 7)}\n`);
    for (const line of lines.slice(0, 40)) destination.write(line);
    // Past the block size, lines go on without waiting for the delay.
    await eventually('the first block written', async () => (fs.readFileSync(file, 'utf8').split('\n').length > 30 ? true : undefined));
    destination.write(lines[40]!);
    // One line alone is written after the delay.
    await eventually('the lone line written', async () => (fs.readFileSync(file, 'utf8').includes('line 40 ') ? true : undefined));
    for (const line of lines.slice(41)) destination.write(line);
    await destination.drain();
    assert.equal(fs.readFileSync(file, 'utf8'), lines.join(''));
  });
});

describe('the gateway request tallies', () => {
  it('write the same latency histogram as a prom-client Histogram given the same observations', async () => {
    const metrics = new GatewayMetrics();
    const reference = new Registry();
    const histogram = new Histogram({
      name: 'gantry_gateway_request_duration_seconds',
      help: metrics.duration.help,
      labelNames: ['model_id', 'deployment_id', 'environment'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [reference],
    });
    const sets = [
      { model_id: 'm1', deployment_id: 'd1', environment: 'production' },
      { model_id: 'm1', deployment_id: 'd2', environment: '' },
    ];
    // Books made for a request not answered yet: nothing to show, as prom-client has no child for it.
    metrics.seriesOf({ model_id: 'm1', deployment_id: 'd1', environment: '' });
    const seconds = [0, 0.0005, 0.001, 0.0011, 0.003, 0.07, 0.25, 0.9, 4, 29.9, 60, 119, 120, 500];
    seconds.forEach((value, i) => {
      const labels = sets[i % 2]!;
      metrics.seriesOf(labels).observe('200', value);
      histogram.observe(labels, value);
    });
    const text = await metrics.registry.getSingleMetricAsString('gantry_gateway_request_duration_seconds');
    assert.equal(text, await reference.getSingleMetricAsString('gantry_gateway_request_duration_seconds'));
    assert.deepEqual(
      await metrics.registry.getMetricsAsJSON().then((all) => all.find((m) => m.name === 'gantry_gateway_request_duration_seconds')),
      (await reference.getMetricsAsJSON())[0],
    );
  });

  it('count answers by status and requests in flight as the counter and gauge show them', async () => {
    const metrics = new GatewayMetrics();
    const labels = { model_id: 'm', deployment_id: 'd', environment: 'production' };
    const series = metrics.seriesOf(labels);
    for (const status of ['200', '200', '503', '200']) series.observe(status, 0.01);
    metrics.observeRequest(labels, '499', 0.02);
    const inFlight = metrics.inFlightOf(labels);
    inFlight.value += 3;
    inFlight.value -= 1;
    metrics.countFastLane();
    metrics.countFastLane();
    const counts = (await metrics.requests.get()).values.map((v) => [v.labels.status_code, v.value]);
    assert.deepEqual(counts, [
      ['200', 3],
      ['503', 1],
      ['499', 1],
    ]);
    assert.deepEqual(
      (await metrics.inFlight.get()).values.map((v) => [v.labels, v.value]),
      [[{ model_id: 'm', deployment_id: 'd' }, 2]],
    );
    assert.equal((await metrics.fastLane.get()).values[0]!.value, 2);
    // Read twice, the same (the registry writes totals, it does not add them again).
    assert.deepEqual(
      (await metrics.requests.get()).values.map((v) => v.value),
      [3, 1, 1],
    );
  });
});

describe('the inference path cache', () => {
  it('answers what parseInferencePath does, and stays bounded', () => {
    const cache = new InferencePathCache();
    const cases: [string | undefined, string][] = [
      [undefined, '/models/abc/production/predict'],
      ['model-abc.localhost:8080', '/production/predict'],
      [undefined, '/models/abc/environments/staging/wake'],
      [undefined, '/models/%zz/production/predict'],
      [undefined, '/nothing'],
      ['elsewhere', '/models/x/deployment/d1/predict'],
    ];
    for (let round = 0; round < 2; round++) for (const [host, pathname] of cases) assert.deepEqual(cache.parse(host, pathname), parseInferencePath(host, pathname));
    for (let i = 0; i < 5000; i++) assert.deepEqual(cache.parse(undefined, `/models/m${i}/production/predict`), parseInferencePath(undefined, `/models/m${i}/production/predict`));
    assert.ok((cache as unknown as { routes: Map<string, unknown> }).routes.size <= 1024);
  });
});
