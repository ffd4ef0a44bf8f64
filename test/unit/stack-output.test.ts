/**
 * What `npm start` prints: every line JSON with the same keys (a child's JSON line unchanged,
 * anything else wrapped), or pretty-printed with the process name in a terminal.
 */
import { strict as assert } from 'node:assert';
import { createLogger, LOG_LINE_KEYS } from '../../src/logging/logger';
import { temporalLevel, temporalLogger } from '../../src/logging/temporal-logger';
import { ChildOutput, outputFormat } from '../../src/stack/child-output';

describe('the stack output', () => {
  it('is pretty in a terminal and JSON otherwise, unless GANTRY_LOG_FORMAT says', () => {
    assert.equal(outputFormat(undefined, true), 'pretty');
    assert.equal(outputFormat(undefined, false), 'json');
    assert.equal(outputFormat('json', true), 'json');
    assert.equal(outputFormat('pretty', false), 'pretty');
  });

  it("passes a child's JSON log lines through unchanged and wraps every other line into one", () => {
    const output = new ChildOutput('json');
    const lines: string[] = [];
    createLogger('node', { destination: { write: (line: string) => void lines.push(line.replace(/\n$/, '')) } }).info({ deploymentId: 'd1' }, 'replica r1 is ready');
    assert.equal(output.childLine('node', 'stdout', lines[0]!), lines[0]);
    const wrapped = [
      output.childLine('temporal', 'stdout', 'CLI 1.5.0 (Server 1.29.0, UI 2.41.0)'),
      output.childLine('node', 'stderr', '    at Object.<anonymous> (/x.js:1:1)'),
      output.childLine('api', 'stdout', '{"not":"a log line"}'),
      output.ownLine('error', 'worker died (signal SIGKILL); restarting in 1.0 s', { child: 'worker' }),
    ].map((line) => JSON.parse(line!) as Record<string, unknown>);
    for (const line of [JSON.parse(lines[0]!) as Record<string, unknown>, ...wrapped]) {
      for (const key of LOG_LINE_KEYS) assert.equal(typeof line[key], 'string', `${key} in ${JSON.stringify(line)}`);
    }
    assert.deepEqual(
      wrapped.map((line) => [line.process, line.level, line.msg]),
      [
        ['temporal', 'info', 'CLI 1.5.0 (Server 1.29.0, UI 2.41.0)'],
        ['node', 'warn', '    at Object.<anonymous> (/x.js:1:1)'],
        ['api', 'info', '{"not":"a log line"}'],
        ['gantry', 'error', 'worker died (signal SIGKILL); restarting in 1.0 s'],
      ],
    );
    assert.equal(wrapped[3]!.child, 'worker');
    assert.deepEqual(
      wrapped.map((line) => line.stream),
      ['stdout', 'stderr', 'stdout', undefined],
      'a wrapped line says where it came from',
    );
  });

  it("drops the lines it makes below GANTRY_LOG_LEVEL, never a child's own log line", () => {
    const output = new ChildOutput('json', {}, false, 'warn');
    assert.equal(output.childLine('temporal', 'stdout', 'chatter'), undefined);
    assert.equal(JSON.parse(output.childLine('temporal', 'stderr', 'a problem')!).level, 'warn');
    assert.equal(output.ownLine('info', 'node stopped (exit code 0)'), undefined);
    assert.equal(JSON.parse(output.ownLine('error', 'node died (signal SIGKILL)')!).level, 'error');
    const own = JSON.stringify({ level: 'info', time: '2026-12-02T12:00:01.234Z', process: 'node', msg: 'its level is its own' });
    assert.equal(output.childLine('node', 'stdout', own), own);
  });

  it('pretty-prints with the process name, the level and the context fields', () => {
    const output = new ChildOutput('pretty', { node: 33 }, true);
    const line = JSON.stringify({ level: 'warn', time: '2026-12-02T12:00:01.234Z', process: 'node', msg: 'replica r1 failed 3 health checks', deploymentId: 'd1' });
    const pretty = output.childLine('node', 'stdout', line)!;
    assert.ok(pretty.startsWith('\x1b[33m[node]'), pretty);
    assert.match(pretty, /WARN/);
    assert.match(pretty, /replica r1 failed 3 health checks/);
    assert.match(pretty, /deploymentId.*d1/);
    assert.ok(!pretty.includes('{"level"'), 'not the JSON line');
    const plain = new ChildOutput('pretty').childLine('temporal', 'stdout', 'plain text')!;
    assert.match(plain, /^\[temporal\] +\S+ INFO.*plain text/);
  });

  it("writes the Temporal SDK's lines as the worker's JSON lines, its metadata as fields", () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('worker', { level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    const sdk = temporalLogger(logger);
    sdk.info('Worker state changed', { sdkComponent: 'worker', taskQueue: 'gantry', state: 'RUNNING' });
    sdk.log('WARN', 'Activity failed', { workflowId: 'deploy:d1', [Symbol('timestamp')]: 1n });
    sdk.trace('dropped below debug');
    sdk.error('plain');
    assert.deepEqual(
      lines.map((line) => [line.process, line.level, line.msg, line.sdkComponent ?? line.workflowId ?? null]),
      [
        ['worker', 'info', 'Worker state changed', 'worker'],
        ['worker', 'warn', 'Activity failed', 'deploy:d1'],
        ['worker', 'error', 'plain', null],
      ],
    );
    assert.deepEqual(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].map(temporalLevel), ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'ERROR', 'ERROR']);
  });
});
