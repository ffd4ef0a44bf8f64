/**
 * Deployment logs: build output and replica output, one JSON line per entry in
 * GANTRY_HOME/logs/<deployment_id>.jsonl. The worker appends build lines, the node
 * appends replica lines, and the API reads the tail.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LogEntry } from '../contracts/api';

/** The log file of one deployment. */
export function logFile(logsDir: string, deploymentId: string): string {
  return path.join(logsDir, `${deploymentId}.jsonl`);
}

/** Appends lines to a deployment's log under one source (blank lines are dropped). */
export function appendLog(logsDir: string, deploymentId: string, source: string, lines: string[]): void {
  const ts = new Date().toISOString();
  const text = lines
    .map((line) => line.replace(/\s+$/, ''))
    .filter((line) => line.length > 0)
    .map((message) => `${JSON.stringify({ ts, source, message } satisfies LogEntry)}\n`)
    .join('');
  if (text.length === 0) return;
  fs.mkdirSync(logsDir, { recursive: true });
  fs.appendFileSync(logFile(logsDir, deploymentId), text);
}

/** Splits a stream's chunks into whole lines, holding back a trailing partial line. */
export class LineSplitter {
  private pending = '';

  /** Feeds a chunk; returns the lines it completed. */
  push(chunk: string | Buffer): string[] {
    const text = this.pending + chunk.toString();
    const lines = text.split(/\r?\n/);
    this.pending = lines.pop() ?? '';
    if (this.pending.length > 64 * 1024) {
      lines.push(this.pending);
      this.pending = '';
    }
    return lines;
  }

  /** Whatever partial line is left, as a last line. */
  flush(): string[] {
    const rest = this.pending;
    this.pending = '';
    return rest ? [rest] : [];
  }
}

/** The last `count` entries of a deployment's log, oldest first; empty when there is none. */
export function readLogTail(logsDir: string, deploymentId: string, count: number): LogEntry[] {
  return readLogTailWithEnd(logsDir, deploymentId, count).entries;
}

/** The size of a deployment's log file (0 when there is none). */
function logSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** Parses whole JSON lines, skipping any that are not an entry. */
function parseEntries(lines: string[]): LogEntry[] {
  return lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogEntry];
    } catch {
      return [];
    }
  });
}

/**
 * Follows a deployment's log: the last `count` entries now, then every entry appended after
 * them, read from the byte where the tail ended (so none is sent twice or missed). The file is
 * polled every `intervalMs`: it is appended by other processes, and a stat is cheap.
 */
export function followLog(logsDir: string, deploymentId: string, count: number, onEntries: (entries: LogEntry[]) => void, intervalMs = 250): () => void {
  const file = logFile(logsDir, deploymentId);
  const first = readLogTailWithEnd(logsDir, deploymentId, count);
  let offset = first.end;
  let partial = '';
  if (first.entries.length > 0) onEntries(first.entries);
  const timer = setInterval(() => {
    try {
      const size = logSize(file);
      if (size <= offset) return;
      const fd = fs.openSync(file, 'r');
      try {
        const buffer = Buffer.alloc(size - offset);
        fs.readSync(fd, buffer, 0, buffer.length, offset);
        offset = size;
        const lines = (partial + buffer.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        const entries = parseEntries(lines.filter((line) => line.length > 0));
        if (entries.length > 0) onEntries(entries);
      } finally {
        fs.closeSync(fd);
      }
    } catch (error) {
      console.error(`logs: cannot read ${file}: ${(error as Error).message}`);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The tail, and the byte offset of the file it was read up to. */
function readLogTailWithEnd(logsDir: string, deploymentId: string, count: number): { entries: LogEntry[]; end: number } {
  const file = logFile(logsDir, deploymentId);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], end: 0 };
    throw error;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const chunkSize = 64 * 1024;
    let position = size;
    let tail = Buffer.alloc(0);
    let newlines = 0;
    // Read backwards until enough whole lines are in hand.
    while (position > 0 && newlines <= count + 1) {
      const length = Math.min(chunkSize, position);
      position -= length;
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, position);
      for (const byte of buffer) if (byte === 10) newlines++;
      tail = Buffer.concat([buffer, tail]);
    }
    // Only whole lines: one being appended right now is read by the follower, from `end` on.
    const text = tail.toString('utf8');
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    const lines = whole.split('\n').filter((line) => line.length > 0);
    if (position > 0) lines.shift(); // the first line may be cut
    return { entries: parseEntries(lines.slice(-count)), end: size - Buffer.byteLength(text.slice(whole.length)) };
  } finally {
    fs.closeSync(fd);
  }
}
