/**
 * The gateway's fast lane (docs/architecture.md §5): the hot path of inference, on the raw
 * sockets. A prediction with a valid key for a deployment that has a ready replica, with a small
 * body, is read straight off the client's socket, written to a kept-alive connection of the
 * replica and its answer passed back byte for byte as it arrives (its head rewritten: request
 * id, deployment id, connection headers). Node's HTTP server and undici cost three times the
 * CPU of this per request; nginx is measured against it (bench/data-plane.ts).
 *
 * Everything else is the HTTP server's: the fast lane hands the connection over, unread bytes
 * included, at the first request it does not take (another method or path, a missing or wrong
 * key, a deployment waiting for a replica, a large or chunked body, anything its strict parser
 * does not accept), and never reads from it again. The answers, the access log, the metrics and
 * the demand are the same either way.
 */
import type * as net from 'node:net';
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import { errorBody } from '../../shared/error-body';
import { ChunkedBodyEnd, readAnswerHead, type AnswerHead } from './answer-framing';
import { RETRYABLE_BODY_BYTES } from './proxy';
import { readRequestHead, type RequestHead } from './request-head';

/** The largest answer head a replica may send. */
const MAX_ANSWER_HEAD_BYTES = 64 * 1024;

/** How many bytes of pipelined requests are read ahead while a request is answered (then the connection is read no further until it is). */
const MAX_PENDING_BYTES = 256 * 1024;

/** How long a request may take to arrive whole before its connection is handed to the HTTP server (and its timeouts). */
const ARRIVAL_TIMEOUT_MS = 10_000;

/** How long an idle client connection is kept open (as the HTTP server's keepAliveTimeout). */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** What a replica's connection tells the exchange that borrows it (its events go there while it is borrowed). */
export interface ReplicaBorrower {
  upstreamData(chunk: Buffer): void;
  /** The replica closed its side. */
  upstreamEnded(): void;
  upstreamFailed(error: Error): void;
}

/** A kept-alive connection to a replica, as the fast lane borrows it. */
export interface ReplicaConnection {
  socket: net.Socket;
  /** Whether it has connected (a request on one that fails before connecting is a refusal, safe to try elsewhere). */
  connected: boolean;
  /** The exchange using it now; none while it is idle. */
  borrower: ReplicaBorrower | undefined;
}

/** A replica the fast lane sends to. */
export interface FastUpstream {
  id: string;
  /** A connection to the replica: an idle one, or a new one. */
  connection(): ReplicaConnection;
  /** Gives a connection back: kept for the next request when the exchange on it was complete (and the replica still routed), else closed. */
  release(connection: ReplicaConnection, reusable: boolean): void;
}

/** How a request the fast lane took ended, for the gateway's books. */
export interface FastOutcome {
  /** The status sent, or 499 when the client left before any answer. */
  status: number;
  /** The client left before the answer was complete. */
  aborted: boolean;
}

/** A request the fast lane serves, as the gateway tracks it. */
export interface FastRequest {
  requestId: string;
  deploymentId: string;
  /** The deployment's predict timeout, in ms: until the answer's head, then the longest gap in its body. */
  timeoutMs: number;
}

/** What the fast lane asks of the gateway it runs in: `R` is the gateway's request, `U` its replica. */
export interface FastLaneHost<R extends FastRequest = FastRequest, U extends FastUpstream = FastUpstream> {
  /** Takes the request when it can be served now (and starts its books: demand, metrics, access log), or leaves it to the HTTP server. */
  admit(head: RequestHead): R | undefined;
  /** The replica to try next (none tried in `tried`), or undefined when none is left. */
  pick(request: R, tried: ReadonlySet<string> | undefined): U | undefined;
  /** The try on `upstream` is over. */
  done(request: R, upstream: U, error?: 'unavailable' | 'timeout' | 'failed'): void;
  /** The error answer for a request no replica could take (its status, code and message). */
  unavailable(request: R): [number, string, string];
  /** The 504 message of a replica that did not answer in time. */
  timedOut(request: R): string;
  /** The request is over: closes its books and writes its access log line. */
  finish(request: R, head: RequestHead, outcome: FastOutcome): void;
  /** Gives the connection to the HTTP server, with the bytes read from it that it has not handled. */
  handOff(socket: net.Socket, unread: Buffer): void;
  /** Whether the gateway is closing: an idle connection is closed, not kept. */
  closing(): boolean;
}

/** A JSON error answer as raw HTTP/1.1 bytes (`connection: close` when asked). */
export function rawJsonError(status: number, code: string, message: string, extraHeaders = '', close = false): string {
  const body = errorBody(code, message);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${extraHeaders}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`;
}

/** The Date header's value, made once a second. */
let cachedDate = '';
let cachedDateSecond = 0;
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedDateSecond) {
    cachedDateSecond = second;
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}

const EMPTY = Buffer.alloc(0);

/** Bodies up to this size are written with their head as one latin1 string (fewer calls into Node's C++ than a buffer made of both). */
const SMALL_BYTES = 16 * 1024;

/** Writes a head (latin1) and the bytes after it to `socket` in one write (one segment); returns what `write` does. */
function writeWithHead(socket: net.Socket, head: string, bytes: Buffer): boolean {
  // latin1 maps every byte to one character and back: the bytes go out unchanged.
  if (bytes.length <= SMALL_BYTES) return socket.write(bytes.length === 0 ? head : head + bytes.toString('latin1'), 'latin1');
  const out = Buffer.allocUnsafe(head.length + bytes.length);
  out.write(head, 0, 'latin1');
  bytes.copy(out, head.length);
  return socket.write(out);
}

/** One client connection while the fast lane has it. */
export class FastConnection<R extends FastRequest, U extends FastUpstream> {
  /** Bytes read and not yet handled. */
  private pending: Buffer = EMPTY;
  private exchange: Exchange<R, U> | undefined;
  private arrivalTimer: NodeJS.Timeout | undefined;
  private handedOff = false;
  private readonly onData = (chunk: Buffer): void => {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.exchange) this.next();
    // Requests pipelined behind the one being answered wait unread past a bound.
    else if (this.pending.length > MAX_PENDING_BYTES) this.socket.pause();
  };
  /** The client ended its side: as Node's HTTP server does, a request not answered yet is given up and the connection closed. */
  private readonly onEnd = (): void => {
    this.pending = EMPTY;
    this.clearArrivalTimer();
    if (this.exchange) this.exchange.clientGone();
    else this.socket.end();
  };
  private readonly onClose = (): void => {
    this.clearArrivalTimer();
    this.exchange?.clientGone();
  };
  private readonly onTimeout = (): void => {
    if (!this.exchange && this.pending.length === 0) this.socket.destroy();
  };

  constructor(
    readonly socket: net.Socket,
    private readonly host: FastLaneHost<R, U>,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', () => socket.destroy());
    socket.setTimeout(KEEP_ALIVE_TIMEOUT_MS, this.onTimeout);
  }

  /** Whether no request is being served on it (it may be closed now). */
  get idle(): boolean {
    return !this.exchange && this.pending.length === 0 && !this.handedOff;
  }

  /** Serves the next request in what was read, waits for more, or hands the connection over. */
  private next(): void {
    if (this.handedOff || this.socket.destroyed) return;
    if (this.socket.isPaused()) this.socket.resume();
    if (this.pending.length === 0) {
      this.clearArrivalTimer();
      if (this.host.closing()) this.socket.end();
      return;
    }
    // A head over Node's own limit is the HTTP server's to refuse (431).
    const reading = readRequestHead(this.pending, maxHeaderSize);
    if (reading.kind === 'unsupported') {
      this.handOff();
      return;
    }
    if (reading.kind === 'incomplete') {
      this.awaitArrival();
      return;
    }
    const head = reading.head;
    // Larger bodies stream through the HTTP server's path; the small ones both lanes read whole.
    if (head.contentLength > RETRYABLE_BODY_BYTES) {
      this.handOff();
      return;
    }
    const size = head.length + head.contentLength;
    if (this.pending.length < size) {
      this.awaitArrival();
      return;
    }
    const request = this.host.admit(head);
    if (!request) {
      this.handOff();
      return;
    }
    this.clearArrivalTimer();
    const body = this.pending.subarray(head.length, size);
    this.pending = this.pending.length === size ? EMPTY : this.pending.subarray(size);
    this.exchange = new Exchange(this.socket, this.host, request, head, body, () => {
      this.exchange = undefined;
      if (head.close || this.socket.destroyed) {
        this.pending = EMPTY;
        this.socket.end();
        return;
      }
      this.next();
    });
  }

  /** Waits for the rest of a request, for ARRIVAL_TIMEOUT_MS at most (then the HTTP server and its timeouts take it). */
  private awaitArrival(): void {
    this.arrivalTimer ??= setTimeout(() => this.handOff(), ARRIVAL_TIMEOUT_MS);
  }

  private clearArrivalTimer(): void {
    if (this.arrivalTimer) clearTimeout(this.arrivalTimer);
    this.arrivalTimer = undefined;
  }

  /** Gives the connection to the HTTP server with what is unread; the fast lane lets go of it. */
  private handOff(): void {
    if (this.handedOff) return;
    this.handedOff = true;
    this.clearArrivalTimer();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.setTimeout(0);
    this.socket.removeAllListeners('timeout');
    this.socket.removeAllListeners('error');
    const unread = this.pending;
    this.pending = EMPTY;
    this.host.handOff(this.socket, unread);
  }

  /** Closes the connection if it is idle (the gateway is closing); a busy one closes after its answer. */
  closeIfIdle(): void {
    if (this.idle) this.socket.end();
  }
}

/** One request on the fast lane: its tries on replicas and its answer to the client. */
class Exchange<R extends FastRequest, U extends FastUpstream> implements ReplicaBorrower {
  private upstream: U | undefined;
  private connection: ReplicaConnection | undefined;
  private tried: Set<string> | undefined;
  private answer: Buffer = EMPTY;
  private answerHead: AnswerHead | undefined;
  /** Body bytes still to pass on (framing by length). */
  private remaining = 0;
  private chunked: ChunkedBodyEnd | undefined;
  private readonly timer: NodeJS.Timeout;
  private over = false;
  private readonly onClientDrain = (): void => {
    this.connection?.socket.resume();
  };

  constructor(
    private readonly client: net.Socket,
    private readonly host: FastLaneHost<R, U>,
    private readonly request: R,
    private readonly head: RequestHead,
    private readonly body: Buffer,
    private readonly onOver: () => void,
  ) {
    this.timer = setTimeout(expire, request.timeoutMs, this);
    this.tryNext();
  }

  /** Sends the request to the next replica the gateway picks, or answers that none could take it. */
  private tryNext(): void {
    const upstream = this.host.pick(this.request, this.tried);
    if (!upstream) {
      const [status, code, message] = this.host.unavailable(this.request);
      this.answerError(status, code, message);
      return;
    }
    this.upstream = upstream;
    const connection = upstream.connection();
    this.connection = connection;
    connection.borrower = this;
    // Head and body in one write: one segment to the replica.
    writeWithHead(
      connection.socket,
      `POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\n${this.head.forwarded}x-request-id: ${this.request.requestId}\r\ncontent-length: ${this.body.length}\r\n\r\n`,
      this.body,
    );
  }

  /** Stops listening to the replica's connection; gives it back when the exchange on it is complete, else closes it. */
  private detach(complete: boolean): void {
    const connection = this.connection;
    if (!connection || !this.upstream) return;
    this.connection = undefined;
    connection.borrower = undefined;
    // Paused while the client did not keep up: the next borrower reads it.
    if (connection.socket.isPaused()) connection.socket.resume();
    this.upstream.release(connection, complete);
  }

  upstreamData(chunk: Buffer): void {
    if (this.over) return;
    if (!this.answerHead) {
      this.answer = this.answer.length === 0 ? chunk : Buffer.concat([this.answer, chunk]);
      const reading = readAnswerHead(this.answer, MAX_ANSWER_HEAD_BYTES);
      if (reading.kind === 'incomplete') return;
      if (reading.kind === 'malformed') {
        this.upstreamFailed(new Error(`replica ${this.upstream!.id} ${reading.reason}`));
        return;
      }
      this.answerHead = reading.head;
      const body = this.answer.subarray(reading.head.length);
      this.answer = EMPTY;
      this.writeAnswerHead(reading.head, body);
      // From here the timer measures gaps in the body.
      this.timer.refresh();
      return;
    }
    this.timer.refresh();
    this.passBody(chunk);
  }

  /** The client's answer head: the replica's status and end-to-end headers, the gateway's own, and the framing. */
  private writeAnswerHead(answer: AnswerHead, firstBytes: Buffer): void {
    const framing = answer.framing;
    const closeAfter = this.head.close || framing.kind === 'until-close' || this.host.closing();
    let text = `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Unknown'}\r\nx-request-id: ${this.request.requestId}\r\n${answer.headerLines}x-gantry-deployment-id: ${this.request.deploymentId}\r\ndate: ${httpDate()}\r\n`;
    text += closeAfter ? 'connection: close\r\n' : `connection: keep-alive\r\nkeep-alive: timeout=${KEEP_ALIVE_TIMEOUT_MS / 1000}\r\n`;
    if (framing.kind === 'length') text += `content-length: ${framing.length}\r\n`;
    else if (framing.kind === 'none') text += 'content-length: 0\r\n';
    else if (framing.kind === 'chunked') text += 'transfer-encoding: chunked\r\n';
    if (closeAfter) this.head.close = true;
    if (framing.kind === 'length') this.remaining = framing.length;
    else if (framing.kind === 'chunked') this.chunked = new ChunkedBodyEnd();
    if (framing.kind === 'none') {
      this.client.write(`${text}\r\n`, 'latin1');
      this.complete();
      return;
    }
    // The head and the body bytes that came with it in one write.
    const [passed, end] = this.bodyPart(firstBytes);
    if (this.over) return;
    const flowing = writeWithHead(this.client, `${text}\r\n`, passed);
    this.afterBodyPart(passed, firstBytes, end, flowing);
  }

  /** Passes body bytes to the client, up to the body's end; completes the exchange there. */
  private passBody(bytes: Buffer): void {
    if (this.over || bytes.length === 0) return;
    const [passed, end] = this.bodyPart(bytes);
    if (this.over) return;
    const flowing = this.client.write(passed);
    this.afterBodyPart(passed, bytes, end, flowing);
  }

  /** The part of `bytes` that belongs to the body, and the offset of the body's end in them (-1: it goes on). */
  private bodyPart(bytes: Buffer): [Buffer, number] {
    const framing = this.answerHead!.framing;
    let end = -1;
    if (framing.kind === 'length') {
      if (bytes.length >= this.remaining) end = this.remaining;
      else this.remaining -= bytes.length;
    } else if (framing.kind === 'chunked' && bytes.length > 0) {
      try {
        end = this.chunked!.feed(bytes);
      } catch (error) {
        this.upstreamFailed(new Error(`replica ${this.upstream!.id} sent a malformed chunked answer: ${(error as Error).message}`));
        return [EMPTY, -1];
      }
    }
    return [end < 0 ? bytes : bytes.subarray(0, end), end];
  }

  /** After body bytes were written: the exchange completes at the body's end; a client that does not keep up pauses the replica. */
  private afterBodyPart(passed: Buffer, bytes: Buffer, end: number, flowing: boolean): void {
    if (this.over) return;
    if (end >= 0) {
      // Bytes after the body's end would be a second answer to one request: the connection is not reused.
      if (end < bytes.length) this.answerHead!.keepAlive = false;
      this.complete();
      return;
    }
    if (!flowing && passed.length > 0) {
      this.connection!.socket.pause();
      this.client.once('drain', this.onClientDrain);
    }
  }

  /** The replica closed its side. */
  upstreamEnded(): void {
    if (this.over) return;
    if (this.answerHead?.framing.kind === 'until-close') {
      this.answerHead.keepAlive = false;
      this.complete();
      return;
    }
    this.upstreamFailed(new Error(`replica ${this.upstream!.id} closed the connection before its answer was complete`));
  }

  /** The replica's connection failed: tried elsewhere when it was refused, a 502 before the answer started, a cut answer after. */
  upstreamFailed(error: Error): void {
    if (this.over) return;
    const upstream = this.upstream!;
    const refused = this.connection?.connected === false;
    this.detach(false);
    this.host.done(this.request, upstream, refused ? 'unavailable' : 'failed');
    this.upstream = undefined;
    if (this.answerHead) {
      this.end({ status: this.answerHead.status, aborted: true }, true);
      return;
    }
    if (refused) {
      this.tried ??= new Set();
      this.tried.add(upstream.id);
      this.tryNext();
      return;
    }
    this.answerError(502, 'bad_gateway', `the replica failed to answer: ${error.message}`);
  }

  /** The whole answer has passed: the replica's connection is given back and the request ends. */
  private complete(): void {
    const head = this.answerHead!;
    const upstream = this.upstream!;
    this.detach(head.keepAlive);
    this.upstream = undefined;
    this.host.done(this.request, upstream);
    this.end({ status: head.status, aborted: false }, false);
  }

  /** Answers an error of the gateway's own (JSON), the request body having been read whole. */
  private answerError(status: number, code: string, message: string): void {
    this.client.write(rawJsonError(status, code, message, `x-request-id: ${this.request.requestId}\r\n`, this.head.close), 'latin1');
    this.end({ status, aborted: false }, false);
  }

  /** The predict timeout: before the answer, a 504; during it, a stall (unless the client is the one not reading). */
  expired(): void {
    if (this.over) return;
    if (!this.answerHead) {
      const upstream = this.upstream!;
      this.detach(false);
      this.host.done(this.request, upstream, 'timeout');
      this.upstream = undefined;
      this.answerError(504, 'upstream_timeout', this.host.timedOut(this.request));
      return;
    }
    if (this.client.writableNeedDrain) {
      this.timer.refresh();
      return;
    }
    const upstream = this.upstream!;
    this.detach(false);
    this.host.done(this.request, upstream, 'failed');
    this.upstream = undefined;
    this.end({ status: this.answerHead.status, aborted: true }, true);
  }

  /** The client's connection closed while the exchange went on: the replica's is closed too. */
  clientGone(): void {
    if (this.over) return;
    const upstream = this.upstream;
    this.detach(false);
    if (upstream) this.host.done(this.request, upstream);
    this.upstream = undefined;
    this.end({ status: this.answerHead ? this.answerHead.status : 499, aborted: true }, true);
  }

  /** Ends the exchange once: the books, then the client's connection goes on (or is destroyed when the answer was cut). */
  private end(outcome: FastOutcome, destroyClient: boolean): void {
    if (this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    this.client.off('drain', this.onClientDrain);
    this.host.finish(this.request, this.head, outcome);
    if (destroyClient) this.client.destroy();
    this.onOver();
  }
}

/** The exchange's timer callback (a plain function: no closure per request). */
function expire(exchange: Exchange<FastRequest, FastUpstream>): void {
  exchange.expired();
}
