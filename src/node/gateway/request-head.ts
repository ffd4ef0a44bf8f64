/**
 * The fast lane's request parser (docs/architecture.md §5): reads the head of a request the
 * gateway can pass on without Node's HTTP server, and only that. It accepts a strict subset of
 * HTTP/1.1 (a `POST` with a plain path, well-formed header lines, at most one Content-Length and
 * no Transfer-Encoding, Expect or Upgrade); anything else is `unsupported`, and the connection
 * is handed to Node's HTTP server (llhttp), which parses it in full. So a request either takes
 * the fast lane with the same boundaries llhttp would give it, or never does.
 */
import { REQUEST_ID_HEADER } from '../../logging/request-id';
import { splitHeaderLine } from './header-line';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

/** A request head the fast lane can serve. */
export interface RequestHead {
  /** The request target as sent (a path, with its query). */
  target: string;
  pathname: string;
  /** The query with its `?`, or empty. */
  search: string;
  host: string | undefined;
  authorization: string | undefined;
  /** The client's `x-request-id`, the first if sent twice. */
  requestId: string | undefined;
  /** The body's length (0 without Content-Length). */
  contentLength: number;
  /** Whether the client asked to close the connection after this request. */
  close: boolean;
  /** The end-to-end header lines passed on to the replica (`name: value\r\n` each, names in lower case). */
  forwarded: string;
  /** The head's length in bytes, its blank line included. */
  length: number;
}

/** What a look at the start of a buffer found. */
export type HeadReading = { kind: 'incomplete' } | { kind: 'unsupported' } | { kind: 'head'; head: RequestHead };

const INCOMPLETE: HeadReading = { kind: 'incomplete' };
const UNSUPPORTED: HeadReading = { kind: 'unsupported' };
/** The blank line that ends a head. */
const HEAD_END = Buffer.from('\r\n\r\n');

/** The request line the fast lane takes: POST, a path of visible ASCII, HTTP/1.1. */
const REQUEST_LINE = /^POST (\/[\x21-\x7e]*) HTTP\/1\.1$/;

/** Targets the fast lane leaves to Node's URL handling: dot segments, backslashes, a fragment. */
const NEEDS_NORMALIZING = /\/\.|\\|#/;

/** Request headers that are per connection, or the gateway's own: not passed on to the replica. */
const NOT_FORWARDED = new Set([...HOP_BY_HOP_HEADERS, 'host', 'authorization', 'content-length', REQUEST_ID_HEADER]);

/** Request headers whose presence sends the request to Node's HTTP server. */
const LEFT_TO_NODE = new Set(['transfer-encoding', 'expect', 'upgrade']);

/** Connection options the fast lane understands. */
const CONNECTION_OPTIONS = /^(?:\s*(?:keep-alive|close)\s*)(?:,\s*(?:keep-alive|close)\s*)*$/i;

/**
 * Reads a request head at the start of `buffer`: `incomplete` while its blank line has not
 * arrived (and the head is still under `maxHeadBytes`), `unsupported` for anything the fast lane
 * leaves to Node's HTTP server, else the head.
 */
export function readRequestHead(buffer: Buffer, maxHeadBytes: number): HeadReading {
  const end = buffer.indexOf(HEAD_END);
  if (end < 0) return buffer.length > maxHeadBytes ? UNSUPPORTED : INCOMPLETE;
  if (end > maxHeadBytes) return UNSUPPORTED;
  const lines = buffer.toString('latin1', 0, end).split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]!);
  if (!requestLine) return UNSUPPORTED;
  const target = requestLine[1]!;
  if (NEEDS_NORMALIZING.test(target)) return UNSUPPORTED;
  const query = target.indexOf('?');
  const head: RequestHead = {
    target,
    pathname: query < 0 ? target : target.slice(0, query),
    search: query < 0 ? '' : target.slice(query),
    host: undefined,
    authorization: undefined,
    requestId: undefined,
    contentLength: 0,
    close: false,
    forwarded: '',
    length: end + HEAD_END.length,
  };
  let sawLength = false;
  for (let i = 1; i < lines.length; i++) {
    const line = splitHeaderLine(lines[i]!);
    if (!line) return UNSUPPORTED;
    const name = line[0].toLowerCase();
    const value = line[1];
    if (LEFT_TO_NODE.has(name)) return UNSUPPORTED;
    switch (name) {
      case 'content-length':
        if (sawLength || !/^\d{1,15}$/.test(value)) return UNSUPPORTED;
        sawLength = true;
        head.contentLength = Number(value);
        continue;
      case 'host':
        if (head.host !== undefined) return UNSUPPORTED;
        head.host = value;
        continue;
      case 'authorization':
        if (head.authorization !== undefined) return UNSUPPORTED;
        head.authorization = value;
        continue;
      case 'connection':
        if (!CONNECTION_OPTIONS.test(value)) return UNSUPPORTED;
        if (/close/i.test(value)) head.close = true;
        continue;
      case 'x-request-id':
        head.requestId ??= value;
        continue;
    }
    if (!NOT_FORWARDED.has(name)) head.forwarded += `${name}: ${value}\r\n`;
  }
  // Node's HTTP server refuses an HTTP/1.1 request without Host (400): left to it.
  if (head.host === undefined) return UNSUPPORTED;
  return { kind: 'head', head };
}
