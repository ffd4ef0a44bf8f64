/**
 * How the fast lane reads a replica's answer: its head (status, the headers passed on, how its
 * body is framed), then where the body ends, so that the body's bytes can be passed to the
 * client as they arrive, unchanged, and the replica's connection kept for the next request.
 */

import { REQUEST_ID_HEADER } from '../../logging/request-id';
import { DEPLOYMENT_ID_HEADER } from '../../shared/constants';
import { decimalValue, HEAD_END, headerLine, headerNames, nameIdOf, normalizedLine, readHeaderLine, headerValue } from './header-line';
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

/** How a status line starts (`HTTP/1.0 ` or `HTTP/1.1 ` follows). */
const HTTP_1 = 'HTTP/1.';

/** The answer headers the reader looks at, numbered in this order. */
enum Known {
  ContentLength,
  TransferEncoding,
  Connection,
}
const KNOWN = headerNames(['content-length', 'transfer-encoding', 'connection']);

/** Answer headers that are per connection, or that the gateway writes itself: not passed on. */
const NOT_PASSED_ON = headerNames([...HOP_BY_HOP_HEADERS, 'content-length', 'date', REQUEST_ID_HEADER, DEPLOYMENT_ID_HEADER]);

/** The line record the reader reads each header into (one answer is read at a time). */
const line = headerLine();

/** Reads a replica's answer head at the start of `buffer` (`maxHeadBytes` at most). */
export function readAnswerHead(buffer: Buffer, maxHeadBytes: number): AnswerReading {
  const end = buffer.indexOf(HEAD_END);
  if (end < 0) return buffer.length > maxHeadBytes ? { kind: 'malformed', reason: 'its answer head is too large' } : INCOMPLETE;
  // Decoded once (its last line's CRLF included); lines and values are read in the text.
  const text = buffer.toString('latin1', 0, end + 2);
  const statusLineEnd = statusLineLength(text);
  if (statusLineEnd < 0) return { kind: 'malformed', reason: 'its answer does not start with an HTTP/1.1 status line' };
  const status = (text.charCodeAt(9) - 48) * 100 + (text.charCodeAt(10) - 48) * 10 + (text.charCodeAt(11) - 48);
  let keepAlive = text.charCodeAt(7) === 0x31;
  let length: number | undefined;
  let chunked = false;
  let headerLines = '';
  for (let start = statusLineEnd + 2; start < end; start = line.next) {
    if (!readHeaderLine(text, start, end, line)) return { kind: 'malformed', reason: 'its answer has a malformed header line' };
    switch (nameIdOf(text, line, KNOWN)) {
      case Known.ContentLength: {
        const value = decimalValue(text, line);
        if (value < 0 || (length !== undefined && length !== value)) return { kind: 'malformed', reason: 'its answer has an invalid Content-Length' };
        length = value;
        continue;
      }
      case Known.TransferEncoding: {
        const value = headerValue(text, line);
        if (!/^chunked$/i.test(value)) return { kind: 'malformed', reason: `its answer has an unsupported Transfer-Encoding ${value}` };
        chunked = true;
        continue;
      }
      case Known.Connection: {
        const value = headerValue(text, line);
        if (/\bclose\b/i.test(value)) keepAlive = false;
        else if (/\bkeep-alive\b/i.test(value)) keepAlive = true;
        continue;
      }
    }
    if (nameIdOf(text, line, NOT_PASSED_ON) < 0) headerLines += normalizedLine(text, line);
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

/**
 * The length of a status line `HTTP/1.x NNN reason` (x 0 or 1, a status from 200 to 599, the
 * reason optional and without CR or LF) at the start of a head's text (its last CRLF included),
 * or -1 when the text does not start with one.
 */
function statusLineLength(text: string): number {
  if (text.length < 14 || !text.startsWith(HTTP_1)) return -1;
  const minor = text.charCodeAt(7);
  if ((minor !== 0x30 && minor !== 0x31) || text.charCodeAt(8) !== 0x20) return -1;
  const first = text.charCodeAt(9);
  if (first < 0x32 || first > 0x35 || !isDigit(text.charCodeAt(10)) || !isDigit(text.charCodeAt(11))) return -1;
  const afterStatus = text.charCodeAt(12);
  if (afterStatus === 0x0d) return text.charCodeAt(13) === 0x0a ? 12 : -1;
  if (afterStatus !== 0x20) return -1;
  for (let i = 13; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x0d) return text.charCodeAt(i + 1) === 0x0a ? i : -1;
    if (code === 0x0a) return -1;
  }
  return -1;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
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
