/**
 * Deployment log rotation: by size, with retention, safe with two processes appending at once
 * (the worker and the node), a tail that spans the rotated files, a follower that goes on across
 * rotations, and every file removed with the deployment.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { appendLog, followLog, logFile, readLogTail, removeDeploymentLogs, rotatedLogFiles, type DeploymentLogLimits } from '../../src/logs/deployment-logs';
import type { LogEntry } from '../../src/shared/views';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually } from '../helpers/ports';

/** Every entry in a deployment's files, oldest file first. */
function allEntries(dir: string, id: string): LogEntry[] {
  return [...rotatedLogFiles(dir, id), logFile(dir, id)]
    .filter((file) => fs.existsSync(file))
    .flatMap((file) =>
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as LogEntry),
    );
}

/** Runs a separate Node process that appends `count` lines `<name> <i>` to the deployment's log. */
function writerProcess(dir: string, id: string, name: string, count: number, limits: DeploymentLogLimits): Promise<number> {
  const script = `
    const { appendLog } = require(${JSON.stringify(path.join(PROJECT_ROOT, 'dist', 'src', 'logs', 'deployment-logs.js'))});
    for (let i = 0; i < ${count}; i++) appendLog(${JSON.stringify(dir)}, ${JSON.stringify(id)}, ${JSON.stringify(name)}, [${JSON.stringify(name)} + ' ' + i + ' ' + 'x'.repeat(40)], ${JSON.stringify(limits)});
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

describe('deployment log rotation', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-rotation-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('rotates a file once it reaches the size limit and keeps only the newest rotated files', () => {
    const limits = { maxBytes: 1100, rotatedFiles: 2 };
    // Each entry is 112 bytes: a file is rotated on its tenth line.
    for (let i = 0; i < 45; i++) appendLog(dir, 'd1', 'build', [`line ${String(i).padStart(2, '0')} ${'y'.repeat(40)}`], limits);
    const rotated = rotatedLogFiles(dir, 'd1');
    assert.deepEqual(
      rotated.map((file) => path.basename(file)),
      ['d1.3.jsonl', 'd1.4.jsonl'],
      'four rotations, the two newest kept',
    );
    for (const file of rotated) assert.ok(fs.statSync(file).size >= limits.maxBytes, `${file} was full when rotated`);
    assert.ok(fs.statSync(logFile(dir, 'd1')).size < limits.maxBytes);
    const kept = allEntries(dir, 'd1').map((entry) => Number(entry.message.split(' ')[1]));
    assert.deepEqual(
      kept,
      Array.from({ length: kept.length }, (_, i) => 45 - kept.length + i),
      'the newest lines, in order, none twice',
    );
    assert.equal(kept.at(-1), 44);
    assert.ok(!fs.existsSync(`${logFile(dir, 'd1')}.rotating`), 'the rotation lock is released');
  });

  it('drops a full file when no rotated file is to be kept', () => {
    for (let i = 0; i < 25; i++) appendLog(dir, 'd1', 'build', [`line ${i} ${'y'.repeat(40)}`], { maxBytes: 1100, rotatedFiles: 0 });
    assert.deepEqual(rotatedLogFiles(dir, 'd1'), []);
    assert.deepEqual(
      readLogTail(dir, 'd1', 100).map((entry) => entry.message.split(' ')[1]),
      ['20', '21', '22', '23', '24'],
    );
  });

  it('reads a tail across the current and the rotated files, oldest first', () => {
    const limits = { maxBytes: 1000, rotatedFiles: 10 };
    for (let i = 0; i < 35; i++) appendLog(dir, 'd1', i % 2 ? 'build' : 'replica-x', [`line ${i} ${'y'.repeat(40)}`], limits);
    assert.equal(rotatedLogFiles(dir, 'd1').length, 3);
    const numbers = (count: number): number[] => readLogTail(dir, 'd1', count).map((entry) => Number(entry.message.split(' ')[1]));
    assert.deepEqual(numbers(3), [32, 33, 34]);
    assert.deepEqual(
      numbers(12),
      Array.from({ length: 12 }, (_, i) => 23 + i),
      'spans the newest rotated file',
    );
    assert.deepEqual(
      numbers(1000),
      Array.from({ length: 35 }, (_, i) => i),
      'every line of every file, once',
    );
  });

  it('loses no line and rotates no file twice when two processes append at once', async () => {
    const limits = { maxBytes: 4096, rotatedFiles: 1000 };
    const perWriter = 2000;
    const codes = await Promise.all([writerProcess(dir, 'd1', 'worker', perWriter, limits), writerProcess(dir, 'd1', 'node', perWriter, limits)]);
    assert.deepEqual(codes, [0, 0]);
    const entries = allEntries(dir, 'd1');
    assert.equal(entries.length, 2 * perWriter, 'every line, once');
    for (const writer of ['worker', 'node']) {
      const numbers = entries.filter((entry) => entry.source === writer).map((entry) => Number(entry.message.split(' ')[1]));
      assert.deepEqual(
        numbers,
        Array.from({ length: perWriter }, (_, i) => i),
        `${writer}'s lines in the order it wrote them`,
      );
    }
    const rotated = rotatedLogFiles(dir, 'd1');
    assert.ok(rotated.length >= 30, `rotated ${rotated.length} times`);
    for (const file of rotated) assert.ok(fs.statSync(file).size >= limits.maxBytes, `${path.basename(file)} was full when rotated (no double rotation)`);
    assert.ok(!fs.existsSync(`${logFile(dir, 'd1')}.rotating`), 'the rotation lock is released');
  });

  it('keeps the retention count with two processes appending at once', async () => {
    const limits = { maxBytes: 2048, rotatedFiles: 3 };
    const codes = await Promise.all([writerProcess(dir, 'd1', 'worker', 1000, limits), writerProcess(dir, 'd1', 'node', 1000, limits)]);
    assert.deepEqual(codes, [0, 0]);
    assert.equal(rotatedLogFiles(dir, 'd1').length, 3);
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => !/^d1(\.\d+)?\.jsonl$/.test(name)),
      [],
      'nothing but the current file and the rotated ones',
    );
  });

  it('follows a log across rotations: every line once, in order, also when several rotations happen between two polls', async () => {
    const limits = { maxBytes: 1000, rotatedFiles: 50 };
    for (let i = 0; i < 5; i++) appendLog(dir, 'd1', 'build', [`line ${i} ${'y'.repeat(40)}`], limits);
    const got: number[] = [];
    const stop = followLog(dir, 'd1', 3, (entries) => got.push(...entries.map((entry) => Number(entry.message.split(' ')[1]))), 50);
    try {
      assert.deepEqual(got, [2, 3, 4]);
      // 40 lines at once: four rotations before the follower's next poll.
      for (let i = 5; i < 45; i++) appendLog(dir, 'd1', 'build', [`line ${i} ${'y'.repeat(40)}`], limits);
      await eventually('the burst followed', async () => (got.at(-1) === 44 ? true : undefined), 5000, 20);
      // Then one line at a time, a poll between each, across more rotations.
      for (let i = 45; i < 80; i++) {
        appendLog(dir, 'd1', i % 2 ? 'build' : 'replica-x', [`line ${i} ${'y'.repeat(40)}`], limits);
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
      await eventually('every line followed', async () => (got.at(-1) === 79 ? true : undefined), 5000, 20);
      assert.ok(rotatedLogFiles(dir, 'd1').length >= 7);
      assert.deepEqual(
        got,
        Array.from({ length: 78 }, (_, i) => i + 2),
      );
    } finally {
      stop();
    }
  });

  it('follows a log whose current file was rotated away and not yet recreated when several more rotations follow', async () => {
    const limits = { maxBytes: 1100, rotatedFiles: 50 };
    const got: number[] = [];
    const stop = followLog(dir, 'd1', 10, (entries) => got.push(...entries.map((entry) => Number(entry.message.split(' ')[1]))), 100);
    const append = (from: number, to: number): void => {
      for (let i = from; i < to; i++) appendLog(dir, 'd1', 'build', [`line ${String(i).padStart(2, '0')} ${'y'.repeat(40)}`], limits);
    };
    try {
      append(0, 10); // ends with a rotation: no current file now
      assert.ok(!fs.existsSync(logFile(dir, 'd1')));
      await eventually('the first file followed', async () => (got.at(-1) === 9 ? true : undefined), 5000, 20);
      await new Promise((resolve) => setTimeout(resolve, 250)); // polls that find no current file
      append(10, 35); // two more rotations and a current file, between two polls
      await eventually('every line followed', async () => (got.at(-1) === 34 ? true : undefined), 5000, 20);
      assert.deepEqual(
        got,
        Array.from({ length: 35 }, (_, i) => i),
      );
    } finally {
      stop();
    }
  });

  it('follows a log whose file does not exist yet, and one whose full files are dropped', async () => {
    const got: number[] = [];
    const stop = followLog(dir, 'd1', 10, (entries) => got.push(...entries.map((entry) => Number(entry.message.split(' ')[1]))), 20);
    try {
      for (let i = 0; i < 30; i++) {
        appendLog(dir, 'd1', 'build', [`line ${i} ${'y'.repeat(40)}`], { maxBytes: 1000, rotatedFiles: 0 });
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      await eventually('every line followed', async () => (got.at(-1) === 29 ? true : undefined), 5000, 20);
      assert.deepEqual(
        got,
        Array.from({ length: 30 }, (_, i) => i),
      );
    } finally {
      stop();
    }
  });

  it('removes every file of a deployment and none of another', () => {
    const limits = { maxBytes: 1100, rotatedFiles: 5 };
    for (let i = 0; i < 30; i++) {
      appendLog(dir, 'd1', 'build', [`line ${i} ${'y'.repeat(40)}`], limits);
      appendLog(dir, 'd2', 'build', [`line ${i} ${'y'.repeat(40)}`], limits);
    }
    fs.writeFileSync(`${logFile(dir, 'd1')}.rotating`, ''); // a lock left by a writer that died
    assert.equal(removeDeploymentLogs(dir, 'd1'), 3);
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => name.startsWith('d1')),
      [],
    );
    assert.equal(readLogTail(dir, 'd2', 1000).length, 30);
  });
});
