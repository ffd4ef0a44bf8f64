/**
 * The fast lane's request parser (docs/architecture.md §5): reads the head of a request the
 * gateway can pass on without Node's HTTP server, and only that. It accepts a strict subset of
 * HTTP/1.1 (a `POST` with a plain path, well-formed header lines, at most one Content-Length and
 * no Transfer-Encoding, Expect or Upgrade); anything else is `unsupported`, and the connection
 * is handed to Node's HTTP server (llhttp), which parses it in full. So a request either takes
 * the fast lane with the same boundaries llhttp would give it, or never does.
 */
import { REQUEST_ID_HEADER } from '../../logging/request-id';
import { decimalValue, HEAD_END, headerLine, headerNames, nameIdOf, normalizedLine, readHeaderLine, headerValue } from './header-line';
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

/** The start of the request line the fast lane takes (a POST of a path)… */
const POST_PATH = 'POST /';
/** …and its end: HTTP/1.1, then the line's CRLF. */
const HTTP_1_1_LINE_END = ' HTTP/1.1\r\n';

/** The request headers the parser looks at, numbered in this order. */
enum Known {
  ContentLength,
  Host,
  Authorization,
  Connection,
  RequestId,
  /** Their presence sends the request to Node's HTTP server. */
  TransferEncoding,
  Expect,
  Upgrade,
}
const KNOWN_NAMES = ['content-length', 'host', 'authorization', 'connection', REQUEST_ID_HEADER, 'transfer-encoding', 'expect', 'upgrade'];

/** Request headers that are per connection, or the gateway's own: not passed on to the replica (with those above). */
const NOT_FORWARDED = headerNames([...KNOWN_NAMES, ...HOP_BY_HOP_HEADERS]);
const KNOWN = headerNames(KNOWN_NAMES);

/** Connection options the fast lane understands. */
const CONNECTION_OPTIONS = /^(?:\s*(?:keep-alive|close)\s*)(?:,\s*(?:keep-alive|close)\s*)*$/i;

/** The line record the parser reads each header into (one request is parsed at a time). */
const line = headerLine();

/**
 * Reads a request head at the start of `buffer`: `incomplete` while its blank line has not
 * arrived (and the head is still under `maxHeadBytes`), `unsupported` for anything the fast lane
 * leaves to Node's HTTP server, else the head.
 */
export function readRequestHead(buffer: Buffer, maxHeadBytes: number): HeadReading {
  const end = buffer.indexOf(HEAD_END);
  if (end < 0) return buffer.length > maxHeadBytes ? UNSUPPORTED : INCOMPLETE;
  if (end > maxHeadBytes) return UNSUPPORTED;
  // Decoded once (its last line's CRLF included); lines and values are read in the text.
  const text = buffer.toString('latin1', 0, end + 2);
  const targetEnd = requestTargetEnd(text);
  if (targetEnd < 0) return UNSUPPORTED;
  const target = text.slice(POST_PATH.length - 1, targetEnd);
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
  for (let start = targetEnd + HTTP_1_1_LINE_END.length; start < end; start = line.next) {
    if (!readHeaderLine(text, start, end, line)) return UNSUPPORTED;
    switch (nameIdOf(text, line, KNOWN)) {
      case Known.ContentLength:
        head.contentLength = decimalValue(text, line);
        if (sawLength || head.contentLength < 0) return UNSUPPORTED;
        sawLength = true;
        continue;
      case Known.Host:
        if (head.host !== undefined) return UNSUPPORTED;
        head.host = headerValue(text, line);
        continue;
      case Known.Authorization:
        if (head.authorization !== undefined) return UNSUPPORTED;
        head.authorization = headerValue(text, line);
        continue;
      case Known.Connection: {
        const value = headerValue(text, line);
        if (!CONNECTION_OPTIONS.test(value)) return UNSUPPORTED;
        if (/close/i.test(value)) head.close = true;
        continue;
      }
      case Known.RequestId:
        head.requestId ??= headerValue(text, line);
        continue;
      case Known.TransferEncoding:
      case Known.Expect:
      case Known.Upgrade:
        return UNSUPPORTED;
    }
    if (nameIdOf(text, line, NOT_FORWARDED) < 0) head.forwarded += normalizedLine(text, line, true);
  }
  // Node's HTTP server refuses an HTTP/1.1 request without Host (400): left to it.
  if (head.host === undefined) return UNSUPPORTED;
  return { kind: 'head', head };
}

/**
 * Where the target of a request line `POST /… HTTP/1.1` ends, or -1 for any other request line:
 * another method or version, a byte outside visible ASCII, or a target left to Node's URL
 * handling (a dot segment, a backslash, a fragment).
 */
function requestTargetEnd(text: string): number {
  if (!text.startsWith(POST_PATH)) return -1;
  let i = POST_PATH.length;
  let previous = 0x2f;
  for (; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x20) break;
    if (code < 0x21 || code > 0x7e || code === 0x5c || code === 0x23 || (code === 0x2e && previous === 0x2f)) return -1;
    previous = code;
  }
  return text.startsWith(HTTP_1_1_LINE_END, i) ? i : -1;
}
