/**
 * How the fast lane reads a replica's answer: its head (status, the headers passed on, how its
 * body is framed), then where the body ends, so that the body's bytes can be passed to the
 * client as they arrive, unchanged, and the replica's connection kept for the next request.
 */

import { REQUEST_ID_HEADER } from '../../logging/request-id';
import { DEPLOYMENT_ID_HEADER } from '../../shared/constants';
import { splitHeaderLine } from './header-line';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

/** How an answer's body ends. */
export type BodyFraming = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until-close' } | { kind: 'none' };

/** A replica's answer head. */
export interface AnswerHead {
  status: number;
  /** The end-to-end header lines passed on to the client (`name: value\r\n` each). */
  headerLines: string;
  framing: BodyFraming;
  /** Whether the replica keeps the connection open after this answer. */
  keepAlive: boolean;
  /** The head's length in bytes, its blank line included. */
  length: number;
}

/** What a look at the start of a replica's answer found. */
export type AnswerReading = { kind: 'incomplete' } | { kind: 'malformed'; reason: string } | { kind: 'head'; head: AnswerHead };

const INCOMPLETE: AnswerReading = { kind: 'incomplete' };

const HEAD_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([2-5]\d\d)(?: .*)?$/;

/** Answer headers that are per connection, or that the gateway writes itself: not passed on. */
const NOT_PASSED_ON = new Set([...HOP_BY_HOP_HEADERS, 'content-length', 'date', REQUEST_ID_HEADER, DEPLOYMENT_ID_HEADER]);

/** Reads a replica's answer head at the start of `buffer` (`maxHeadBytes` at most). */
export function readAnswerHead(buffer: Buffer, maxHeadBytes: number): AnswerReading {
  const end = buffer.indexOf(HEAD_END);
  if (end < 0) return buffer.length > maxHeadBytes ? { kind: 'malformed', reason: 'its answer head is too large' } : INCOMPLETE;
  const lines = buffer.toString('latin1', 0, end).split('\r\n');
  const statusLine = STATUS_LINE.exec(lines[0]!);
  if (!statusLine) return { kind: 'malformed', reason: 'its answer does not start with an HTTP/1.1 status line' };
  const status = Number(statusLine[2]);
  let keepAlive = statusLine[1] === '1';
  let length: number | undefined;
  let chunked = false;
  let headerLines = '';
  for (let i = 1; i < lines.length; i++) {
    const line = splitHeaderLine(lines[i]!);
    if (!line) return { kind: 'malformed', reason: 'its answer has a malformed header line' };
    const name = line[0].toLowerCase();
    const value = line[1];
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) return { kind: 'malformed', reason: 'its answer has an invalid Content-Length' };
      length = Number(value);
    } else if (name === 'transfer-encoding') {
      if (!/^chunked$/i.test(value)) return { kind: 'malformed', reason: `its answer has an unsupported Transfer-Encoding ${value}` };
      chunked = true;
    } else if (name === 'connection') {
      if (/\bclose\b/i.test(value)) keepAlive = false;
      else if (/\bkeep-alive\b/i.test(value)) keepAlive = true;
    }
    if (!NOT_PASSED_ON.has(name)) headerLines += `${line[0]}: ${value}\r\n`;
  }
  let framing: BodyFraming;
  if (status === 204 || status === 304) framing = { kind: 'none' };
  else if (chunked) framing = { kind: 'chunked' };
  else if (length !== undefined) framing = length === 0 ? { kind: 'none' } : { kind: 'length', length };
  else {
    framing = { kind: 'until-close' };
    keepAlive = false;
  }
  if (chunked && length !== undefined) return { kind: 'malformed', reason: 'its answer has both Content-Length and Transfer-Encoding' };
  return { kind: 'head', head: { status, headerLines, framing, keepAlive, length: end + HEAD_END.length } };
}

/** Where a chunked body is in its framing. */
enum ChunkState {
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerLineStart,
  TrailerLine,
  TrailerLf,
  EndLf,
  Done,
}

const CR = 13;
const LF = 10;

/** The largest chunk size accepted (hex digits beyond this are malformed). */
const MAX_CHUNK_SIZE_DIGITS = 12;

/**
 * Follows a chunked body through the bytes that pass (they are passed on unchanged) and tells
 * where it ends: its last chunk, its trailers and their blank line.
 */
export class ChunkedBodyEnd {
  private state = ChunkState.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;

  /** The offset in `chunk` just past the body's end, -1 when the body goes on; throws on malformed framing. */
  feed(chunk: Buffer, from = 0): number {
    let i = from;
    while (i < chunk.length) {
      switch (this.state) {
        case ChunkState.Data: {
          const take = Math.min(this.remaining, chunk.length - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = ChunkState.DataCr;
          continue;
        }
        case ChunkState.Size: {
          const byte = chunk[i]!;
          const digit = hexValue(byte);
          if (digit >= 0) {
            if (++this.digits > MAX_CHUNK_SIZE_DIGITS) throw new Error('a chunk size is too large');
            this.size = this.size * 16 + digit;
          } else if (this.digits > 0 && (byte === 59 || byte === 32 || byte === 9)) {
            this.state = ChunkState.Extension;
          } else if (this.digits > 0 && byte === CR) {
            this.state = ChunkState.SizeLf;
          } else throw new Error('a chunk size line is malformed');
          break;
        }
        case ChunkState.Extension:
          if (chunk[i] === CR) this.state = ChunkState.SizeLf;
          else if (chunk[i] === LF) throw new Error('a chunk size line is malformed');
          break;
        case ChunkState.SizeLf:
          if (chunk[i] !== LF) throw new Error('a chunk size line is malformed');
          if (this.size === 0) this.state = ChunkState.TrailerLineStart;
          else {
            this.remaining = this.size;
            this.state = ChunkState.Data;
          }
          this.size = 0;
          this.digits = 0;
          break;
        case ChunkState.DataCr:
          if (chunk[i] !== CR) throw new Error('a chunk is longer than its size');
          this.state = ChunkState.DataLf;
          break;
        case ChunkState.DataLf:
          if (chunk[i] !== LF) throw new Error('a chunk is longer than its size');
          this.state = ChunkState.Size;
          break;
        case ChunkState.TrailerLineStart:
          this.state = chunk[i] === CR ? ChunkState.EndLf : ChunkState.TrailerLine;
          break;
        case ChunkState.TrailerLine:
          if (chunk[i] === CR) this.state = ChunkState.TrailerLf;
          break;
        case ChunkState.TrailerLf:
          if (chunk[i] !== LF) throw new Error('a trailer line is malformed');
          this.state = ChunkState.TrailerLineStart;
          break;
        case ChunkState.EndLf:
          if (chunk[i] !== LF) throw new Error('a chunked body does not end with a blank line');
          this.state = ChunkState.Done;
          return i + 1;
        case ChunkState.Done:
          return i;
      }
      i++;
    }
    return this.state === ChunkState.Done ? i : -1;
  }
}

/** A hex digit's value, or -1. */
function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  if (byte >= 97 && byte <= 102) return byte - 87;
  if (byte >= 65 && byte <= 70) return byte - 55;
  return -1;
}
