/**
 * Deployment logs: build output and replica output, one JSON line per entry in
 * GANTRY_HOME/logs/<deployment_id>.jsonl. The worker appends build lines, the node
 * appends replica lines, and the API reads the tail.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One line of a deployment's log. */
export interface LogEntry {
  /** ISO time the line was written. */
  ts: string;
  /** `build`, `gantry` (status changes) or `replica-<id>`. */
  source: string;
  message: string;
}

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
    .map((message) => JSON.stringify({ ts, source, message } satisfies LogEntry) + '\n')
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
  const file = logFile(logsDir, deploymentId);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
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
    const lines = tail.toString('utf8').split('\n').filter((line) => line.length > 0);
    if (position > 0) lines.shift(); // the first line may be cut
    return lines.slice(-count).flatMap((line) => {
      try {
        return [JSON.parse(line) as LogEntry];
      } catch {
        return [];
      }
    });
  } finally {
    fs.closeSync(fd);
  }
}
