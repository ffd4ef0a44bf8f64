/**
 * Deployment logs: build output and replica output, one JSON line per entry in
 * GANTRY_HOME/logs/<deployment_id>.jsonl. The worker appends build lines, the node
 * appends replica lines, and the API reads the tail and follows it.
 *
 * Rotation (docs/operations.md#deployment-logs): after an append leaves the file at
 * GANTRY_DEPLOYMENT_LOG_MAX_BYTES or more, the writer renames it to `<id>.<n>.jsonl` (n one more
 * than the newest rotated file) and removes the oldest rotated files beyond
 * GANTRY_DEPLOYMENT_LOG_FILES; the next append creates a new `<id>.jsonl`. Two processes append
 * to the same file, each opening it with O_APPEND for every write, so a rotation only ever renames:
 * a line written by a process that opened the file just before the rename lands in the rotated
 * file, never lost. Rotations are serialized by a lock file (`<id>.jsonl.rotating`, created
 * exclusively); a writer that finds it taken leaves the rotation to its holder, and checks the size
 * again under the lock so that a file is never rotated twice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { processLogger } from '../logging/logger';
import type { LogEntry } from '../shared/views';

/** When a deployment's log is rotated and how many rotated files are kept. */
export interface DeploymentLogLimits {
  /** A file is rotated once an append leaves it at this size or more. */
  maxBytes: number;
  /** Rotated files kept besides the current one (0: a full file is dropped). */
  rotatedFiles: number;
}

/** GANTRY_DEPLOYMENT_LOG_MAX_BYTES and GANTRY_DEPLOYMENT_LOG_FILES when unset: 10 MiB, 3 rotated files. */
export const DEFAULT_DEPLOYMENT_LOG_LIMITS: DeploymentLogLimits = { maxBytes: 10 * 1024 * 1024, rotatedFiles: 3 };

let processLimits: DeploymentLogLimits = DEFAULT_DEPLOYMENT_LOG_LIMITS;

/** Sets the limits this process's appends rotate at (the worker and the node set them from their configuration). */
export function setDeploymentLogLimits(limits: DeploymentLogLimits): void {
  processLimits = limits;
}

/** A lock older than this was left by a writer that died mid-rotation, and is taken over. */
const STALE_LOCK_MS = 10_000;

/** The current log file of one deployment. */
export function logFile(logsDir: string, deploymentId: string): string {
  return path.join(logsDir, `${deploymentId}.jsonl`);
}

/** The rotated log files of one deployment, oldest first. */
export function rotatedLogFiles(logsDir: string, deploymentId: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(logsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const prefix = `${deploymentId}.`;
  return names
    .flatMap((name) => {
      if (!name.startsWith(prefix) || !name.endsWith('.jsonl')) return [];
      const sequence = name.slice(prefix.length, -'.jsonl'.length);
      return /^\d{1,15}$/.test(sequence) ? [{ sequence: Number(sequence), name }] : [];
    })
    .sort((a, b) => a.sequence - b.sequence)
    .map(({ name }) => path.join(logsDir, name));
}

/** Appends lines to a deployment's log under one source (blank lines are dropped), rotating the file when it is full. */
export function appendLog(logsDir: string, deploymentId: string, source: string, lines: string[], limits: DeploymentLogLimits = processLimits): void {
  const ts = new Date().toISOString();
  const text = lines
    .map((line) => line.replace(/\s+$/, ''))
    .filter((line) => line.length > 0)
    .map((message) => `${JSON.stringify({ ts, source, message } satisfies LogEntry)}\n`)
    .join('');
  if (text.length === 0) return;
  fs.mkdirSync(logsDir, { recursive: true });
  // One write per append with O_APPEND: lines of two processes never interleave within a line.
  const fd = fs.openSync(logFile(logsDir, deploymentId), 'a');
  let size: number;
  try {
    fs.writeSync(fd, text);
    size = fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
  if (size >= limits.maxBytes) rotateLog(logsDir, deploymentId, limits);
}

/** Takes the rotation lock; false when another writer holds it. */
function takeRotationLock(lock: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.closeSync(fs.openSync(lock, 'wx'));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    try {
      if (Date.now() - fs.statSync(lock).mtimeMs < STALE_LOCK_MS) return false;
      fs.rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return false;
}

/**
 * Rotates a deployment's log if it is still at `limits.maxBytes` or more: renames it to the
 * next rotated file and removes the oldest beyond `limits.rotatedFiles`. Safe to call from two
 * processes at once (see the module comment).
 */
export function rotateLog(logsDir: string, deploymentId: string, limits: DeploymentLogLimits): void {
  const file = logFile(logsDir, deploymentId);
  const lock = `${file}.rotating`;
  if (!takeRotationLock(lock)) return;
  try {
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (size < limits.maxBytes) return; // the other writer rotated it first
    if (limits.rotatedFiles === 0) {
      fs.rmSync(file, { force: true });
    } else {
      const newest = rotatedLogFiles(logsDir, deploymentId).at(-1);
      const next = newest ? Number(path.basename(newest).slice(deploymentId.length + 1, -'.jsonl'.length)) + 1 : 1;
      fs.renameSync(file, path.join(logsDir, `${deploymentId}.${next}.jsonl`));
    }
    // The newest `rotatedFiles` rotated files stay (the one just made among them).
    const rotated = rotatedLogFiles(logsDir, deploymentId);
    for (const old of rotated.slice(0, Math.max(0, rotated.length - limits.rotatedFiles))) fs.rmSync(old, { force: true });
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Removes every log file of a deployment (the current one and the rotated ones). */
export function removeDeploymentLogs(logsDir: string, deploymentId: string): number {
  const files = [...rotatedLogFiles(logsDir, deploymentId), logFile(logsDir, deploymentId), `${logFile(logsDir, deploymentId)}.rotating`].filter((file) => fs.existsSync(file));
  for (const file of files) fs.rmSync(file, { force: true });
  return files.filter((file) => file.endsWith('.jsonl')).length;
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

/** The last `count` entries of a deployment's log, oldest first, across its rotated files; empty when there is none. */
export function readLogTail(logsDir: string, deploymentId: string, count: number): LogEntry[] {
  const tail = readLogTailWithEnd(logsDir, deploymentId, count);
  if (tail.fd !== undefined) fs.closeSync(tail.fd);
  return tail.entries;
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

/** Opens a file for reading; undefined when it does not exist. */
function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Follows a deployment's log: the last `count` entries now, then every entry appended after
 * them, read from the byte where the tail ended (so none is sent twice or missed). The file is
 * polled every `intervalMs`: it is appended by other processes, and a stat is cheap. The file
 * being followed stays open, so when it is rotated (renamed, or removed) its last lines are still
 * read; then every file rotated after it, whole, and the new `<id>.jsonl` from its first byte.
 */
export function followLog(logsDir: string, deploymentId: string, count: number, onEntries: (entries: LogEntry[]) => void, intervalMs = 250): () => void {
  const file = logFile(logsDir, deploymentId);
  const first = readLogTailWithEnd(logsDir, deploymentId, count);
  let fd = first.fd;
  let inode = fd === undefined ? undefined : fs.fstatSync(fd).ino;
  /** The last file read to its end (a rotated one); the files rotated after it are still to read. */
  let lastRead: number | undefined = fd === undefined ? inodeOf(rotatedLogFiles(logsDir, deploymentId).at(-1)) : undefined;
  let offset = first.end;
  let partial = '';
  if (first.entries.length > 0) onEntries(first.entries);
  const send = (lines: string[]): void => {
    const entries = parseEntries(lines);
    if (entries.length > 0) onEntries(entries);
  };
  /** Reads what was appended to the open file since `offset`. */
  const readNew = (): void => {
    if (fd === undefined) return;
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return;
    const buffer = Buffer.alloc(size - offset);
    fs.readSync(fd, buffer, 0, buffer.length, offset);
    offset = size;
    const lines = (partial + buffer.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    send(lines.filter((line) => line.length > 0));
  };
  /** Reads every file rotated after `lastRead`, whole, oldest first. */
  const readRotated = (): void => {
    for (const rotated of rotatedAfter(logsDir, deploymentId, lastRead)) {
      const whole = readWholeFile(rotated);
      if (!whole) continue; // removed meanwhile
      send(whole.lines);
      lastRead = whole.inode;
    }
  };
  const timer = setInterval(() => {
    try {
      if (fd !== undefined) {
        readNew();
        if (inodeOf(file) === inode) return;
        // Rotated: what a writer appended to it just before the rename; then the rest below.
        readNew();
        fs.closeSync(fd);
        fd = undefined;
        lastRead = inode;
        partial = '';
      }
      // Every file rotated since, then the current one from byte 0; again if it was rotated
      // while the others were read.
      for (;;) {
        readRotated();
        const opened = openIfExists(file);
        if (opened === undefined) return;
        if (rotatedAfter(logsDir, deploymentId, lastRead).length === 0) {
          fd = opened;
          break;
        }
        fs.closeSync(opened);
      }
      inode = fs.fstatSync(fd).ino;
      offset = 0;
      readNew();
    } catch (error) {
      processLogger().warn({ deploymentId, err: error }, `logs: cannot read ${file}: ${(error as Error).message}`);
    }
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (fd !== undefined) fs.closeSync(fd);
    fd = undefined;
  };
}

/** A file's inode; undefined when there is no such file. */
function inodeOf(file: string | undefined): number | undefined {
  if (file === undefined) return undefined;
  try {
    return fs.statSync(file).ino;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The rotated files newer than the one with `inode`, oldest first: those after it, or all of
 * them when it is gone or none is given (retention removes the oldest first, so every file left
 * is newer).
 */
function rotatedAfter(logsDir: string, deploymentId: string, inode: number | undefined): string[] {
  const rotated = rotatedLogFiles(logsDir, deploymentId);
  if (inode === undefined) return rotated;
  return rotated.slice(rotated.findIndex((file) => inodeOf(file) === inode) + 1);
}

/** Every whole line of a file and its inode (undefined if it is gone). */
function readWholeFile(file: string): { lines: string[]; inode: number } | undefined {
  const fd = openIfExists(file);
  if (fd === undefined) return undefined;
  try {
    const inode = fs.fstatSync(fd).ino;
    const text = fs.readFileSync(fd, 'utf8');
    return {
      inode,
      lines: text
        .slice(0, text.lastIndexOf('\n') + 1)
        .split('\n')
        .filter((line) => line.length > 0),
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** The last `count` whole lines of an open file, and the byte offset they end at. */
function tailLines(fd: number, count: number): { lines: string[]; end: number } {
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
  return { lines: lines.slice(-count), end: size - Buffer.byteLength(text.slice(whole.length)) };
}

/**
 * The tail across the current and the rotated files, the current file left open (for a
 * follower) and the byte offset it was read up to.
 */
function readLogTailWithEnd(logsDir: string, deploymentId: string, count: number): { entries: LogEntry[]; fd: number | undefined; end: number } {
  const fd = openIfExists(logFile(logsDir, deploymentId));
  let end = 0;
  let lines: string[] = [];
  if (fd !== undefined) ({ lines, end } = tailLines(fd, count));
  // Too few in the current file: the rest from the rotated ones, newest first.
  for (const file of rotatedLogFiles(logsDir, deploymentId).reverse()) {
    if (lines.length >= count) break;
    const rotated = openIfExists(file);
    if (rotated === undefined) continue; // removed by a rotation meanwhile
    try {
      lines = [...tailLines(rotated, count - lines.length).lines, ...lines];
    } finally {
      fs.closeSync(rotated);
    }
  }
  return { entries: parseEntries(lines), fd, end };
}
