/**
 * Forwards one request to one replica through its undici keep-alive pool and writes the answer
 * straight into the client's response, chunk by chunk, with the client's backpressure. The
 * request body is either a small buffer (kept, so that another replica can be tried when the
 * first refuses the connection) or the client's stream itself, passed on as it arrives.
 */
import type * as http from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { DEPLOYMENT_ID_HEADER } from '../../shared/constants';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

/** Request bodies up to this size (declared by Content-Length) are read whole before they are sent, so that a refused one can be sent to another replica. */
export const RETRYABLE_BODY_BYTES = 64 * 1024;

/** Most connections one replica's pool opens at once (further requests queue in the pool); the fast lane keeps as many (replica-upstream.ts). */
const CONNECTIONS_PER_REPLICA = 128;

/** A replica the proxy can send to: its id and its pool. */
export interface ProxyTarget {
  id: string;
  pool: Dispatcher;
}

/** The replica could not take the request (the connection was refused before anything was sent); another replica may. */
export class UpstreamUnavailable extends Error {
  override name = 'UpstreamUnavailable';
}

/** The replica did not start answering within the deployment's predict timeout; the request to it was aborted. */
export class UpstreamTimeout extends Error {
  override name = 'UpstreamTimeout';
  constructor(readonly seconds: number) {
    super(`the replica did not answer within ${seconds} s`);
  }
}

/** The client sent more than the gateway accepts (counted while its body streamed to the replica). */
export class RequestBodyTooLarge extends Error {
  override name = 'RequestBodyTooLarge';
  constructor(readonly limit: number) {
    super(`request body is larger than ${limit} bytes`);
  }
}

/** How long the proxy waits on a replica. */
export interface ProxyLimits {
  /** Until the answer's status and headers arrive; then, while the body streams, the longest gap between two chunks. */
  timeoutMs: number;
}

/**
 * A request body passed on as the client sends it: counted against `limit`, and marked consumed
 * as soon as the replica's connection starts reading it (from then on it cannot be sent again).
 */
export class StreamedBody {
  /** Whether a replica's connection has started reading the body. */
  consumed = false;
  private received = 0;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly limit: number,
  ) {}

  /** The body's chunks as they arrive; throws RequestBodyTooLarge past the limit, leaving the client's connection open for the 413. */
  async *chunks(): AsyncGenerator<Buffer> {
    this.consumed = true;
    for await (const chunk of this.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      this.received += chunk.length;
      if (this.received > this.limit) throw new RequestBodyTooLarge(this.limit);
      yield chunk;
    }
  }
}

/** A body the proxy sends: a small one kept whole, or the client's stream. */
export type UpstreamBody = Buffer | StreamedBody;

/** Whether a body can still be sent to another replica. */
export function canResend(body: UpstreamBody): boolean {
  return Buffer.isBuffer(body) || !body.consumed;
}

/** The keep-alive pool of connections to a replica on this host (pipelining 1: one request per connection at a time). */
export function replicaPool(port: number): Pool {
  return new Pool(`http://127.0.0.1:${port}`, {
    connections: CONNECTIONS_PER_REPLICA,
    pipelining: 1,
    // The gateway keeps its own timers (the deployment's predict timeout, which outlasts these).
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

/** Request headers that are per connection (or the gateway's own): not passed on to the replica. */
const REQUEST_HOP_BY_HOP = new Set([...HOP_BY_HOP_HEADERS, 'host', 'authorization', 'content-length', 'expect']);

/** Answer headers that are per connection (the gateway sets its own framing): not passed on to the client. */
const ANSWER_HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);

/** The request's end-to-end headers as undici's flat name/value list, with the body's framing. */
function upstreamHeaders(headers: http.IncomingHttpHeaders, body: UpstreamBody): string[] {
  const list: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || REQUEST_HOP_BY_HOP.has(name)) continue;
    if (typeof value === 'string') list.push(name, value);
    else for (const item of value) list.push(name, item);
  }
  if (Buffer.isBuffer(body)) list.push('content-length', String(body.length));
  else if (headers['content-length'] !== undefined) list.push('content-length', headers['content-length']);
  return list;
}

/**
 * Sends the request to the replica's /predict and writes the answer to `res` with the deployment
 * id header; a streamed (chunked) answer reaches the client chunk by chunk as the replica writes
 * it, and the replica is paused while the client does not read. Rejects with UpstreamUnavailable
 * when the connection was refused before anything was sent (safe to retry elsewhere), with
 * UpstreamTimeout when the replica had not started answering within `limits.timeoutMs`, and with
 * RequestBodyTooLarge when a streamed body passed its limit before the answer started; once an
 * answer has started, errors (and a body that stalls for `limits.timeoutMs` while the client
 * keeps up) end `res`. When the client disconnects, the request to the replica is aborted and the
 * promise resolves.
 */
export function forwardToReplica(
  target: ProxyTarget,
  deploymentId: string,
  req: http.IncomingMessage,
  body: UpstreamBody,
  res: http.ServerResponse,
  limits: ProxyLimits,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const exchange = new Exchange(deploymentId, res, limits.timeoutMs, resolve, reject);
    if (res.destroyed) {
      exchange.settle();
      return;
    }
    target.pool.dispatch(
      {
        path: '/predict',
        method: (req.method ?? 'POST') as Dispatcher.HttpMethod,
        headers: upstreamHeaders(req.headers, body),
        // undici takes async iterables as bodies (core/request.js), though its types list streams only.
        body: Buffer.isBuffer(body) ? body : (body.chunks() as unknown as Readable),
      },
      exchange,
    );
  });
}

/** One request to one replica: undici's handler, writing the answer into the client's response. */
class Exchange implements Dispatcher.DispatchHandler {
  private abortUpstream: ((error?: Error) => void) | undefined;
  private settled = false;
  private resumeUpstream: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.settle();
    this.abort();
  };
  private readonly onClientDrain = (): void => this.resumeUpstream?.();

  constructor(
    private readonly deploymentId: string,
    private readonly res: http.ServerResponse,
    private readonly timeoutMs: number,
    private readonly resolve: () => void,
    private readonly reject: (error: Error) => void,
  ) {
    this.timer = setTimeout(expire, timeoutMs, this);
    res.on('close', this.onClientClose);
  }

  /** Ends the exchange once: stops the timer and listeners, then resolves or rejects. */
  settle(error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.res.off('close', this.onClientClose);
    this.res.off('drain', this.onClientDrain);
    if (error) this.reject(error);
    else this.resolve();
  }

  /** Aborts the request to the replica (now, or as soon as the pool gives it a connection). */
  abort(): void {
    this.abortUpstream?.();
  }

  /** The timer fired: before the answer, a timeout; during it, a stall (unless the client is the one not reading). */
  expired(): void {
    if (this.settled) return;
    if (!this.res.headersSent) {
      // Settled first: the abort reports its own error to onError, which must not win.
      this.settle(new UpstreamTimeout(Math.round(this.timeoutMs / 1000)));
      this.abort();
    } else if (this.res.writableNeedDrain) {
      this.timer.refresh();
    } else {
      this.settle();
      this.abort();
      this.res.destroy();
    }
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.settled) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.settled) return false;
    this.resumeUpstream = resume;
    const res = this.res;
    let framed = false;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1').toLowerCase();
      if (ANSWER_HOP_BY_HOP.has(name)) continue;
      if (name === 'content-length') framed = true;
      res.setHeader(name, rawHeaders[i + 1]!.toString('latin1'));
    }
    res.setHeader(DEPLOYMENT_ID_HEADER, this.deploymentId);
    res.writeHead(statusCode);
    if (!framed) {
      // A streamed answer (chunked from the replica, chunked to the client): the headers go out
      // now and every chunk the moment it arrives (no Nagle delay on the client socket).
      res.socket?.setNoDelay(true);
      res.flushHeaders();
    }
    // From here the timer measures gaps in the body; a client that does not read is no gap.
    this.timer.refresh();
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.settled) return false;
    this.timer.refresh();
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onClientDrain);
    return false;
  }

  onComplete(): void {
    if (this.settled) return;
    this.res.end();
    this.settle();
  }

  onError(error: Error): void {
    if (this.settled) return;
    if (this.res.headersSent) {
      this.res.destroy();
      this.settle();
      return;
    }
    if (error instanceof RequestBodyTooLarge) this.settle(error);
    // Never written to a connection: the replica cannot have seen any of it.
    else if (this.abortUpstream === undefined) this.settle(new UpstreamUnavailable(`${(error as NodeJS.ErrnoException).code ?? error.message}`));
    else this.settle(error);
  }
}

/** The exchange's timer callback (a plain function: no closure per request). */
function expire(exchange: Exchange): void {
  exchange.expired();
}
