/** Forwards one buffered request to one replica and streams the answer back, chunk by chunk. */
import * as http from 'node:http';
import { DEPLOYMENT_ID_HEADER } from '../../shared/constants';

/** A replica the proxy can send to. */
export interface ProxyTarget {
  id: string;
  port: number;
  agent: http.Agent;
}

/** The replica could not take the request; nothing reached the client, so another replica may. */
export class UpstreamUnavailable extends Error {
  override name = 'UpstreamUnavailable';
}

/** The replica did not start answering within the deployment's predict timeout; the request to it was destroyed. */
export class UpstreamTimeout extends Error {
  override name = 'UpstreamTimeout';
  constructor(readonly seconds: number) {
    super(`the replica did not answer within ${seconds} s`);
  }
}

/** How long the proxy waits on a replica. */
export interface ProxyLimits {
  /** Until the answer's status and headers arrive; then, while the body streams, the longest gap between two chunks. */
  timeoutMs: number;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  'content-length',
]);

/** Headers safe to pass on to the other side. */
function forwardable(headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders): http.OutgoingHttpHeaders {
  const result: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name.toLowerCase())) result[name] = value;
  }
  return result;
}

/**
 * Sends `body` to the replica's /predict and pipes the answer to `res` with the deployment id
 * header; a streamed (chunked) answer reaches the client chunk by chunk as the replica writes it,
 * with backpressure from the client. Rejects with UpstreamUnavailable when the replica refused or dropped the request
 * before answering (safe to retry elsewhere), and with UpstreamTimeout when it had not started
 * answering within `limits.timeoutMs`; once an answer has started, errors (and a body that
 * stalls for `limits.timeoutMs` while the client keeps up) end `res`. When `clientGone` aborts
 * (the client disconnected), the request to the replica is destroyed and the promise resolves.
 */
export function forwardToReplica(
  target: ProxyTarget,
  deploymentId: string,
  req: http.IncomingMessage,
  body: Buffer,
  res: http.ServerResponse,
  limits: ProxyLimits,
  clientGone: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clientGone.removeEventListener('abort', onClientGone);
      if (error) reject(error);
      else resolve();
    };
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        method: req.method,
        path: '/predict',
        agent: target.agent,
        headers: { ...forwardable(req.headers), 'content-length': body.length },
      },
      (answer) => {
        if (settled) {
          answer.resume();
          return;
        }
        const length = answer.headers['content-length'];
        res.writeHead(answer.statusCode ?? 502, { ...forwardable(answer.headers), [DEPLOYMENT_ID_HEADER]: deploymentId, ...(length ? { 'content-length': length } : {}) });
        if (!length) {
          // A streamed answer (chunked from the replica, chunked to the client): the headers go
          // out now and every chunk the moment it arrives (no Nagle delay on the client socket).
          res.socket?.setNoDelay(true);
          res.flushHeaders();
        }
        // From here the timer measures gaps in the body; a client that does not read is no gap.
        timer.refresh();
        answer.on('data', () => timer.refresh());
        answer.pipe(res);
        answer.once('end', () => settle());
        answer.once('error', () => {
          res.destroy();
          settle();
        });
      },
    );
    const timer = setTimeout(function expired(): void {
      if (settled) return;
      if (!res.headersSent) {
        upstream.destroy();
        settle(new UpstreamTimeout(Math.round(limits.timeoutMs / 1000)));
      } else if (res.writableNeedDrain) {
        timer.refresh();
      } else {
        upstream.destroy();
        res.destroy();
        settle();
      }
    }, limits.timeoutMs);
    const onClientGone = (): void => {
      upstream.destroy();
      settle();
    };
    // `on`, not `once`: a ClientRequest 'error' with no listener would crash the process.
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      if (res.headersSent) {
        res.destroy();
        settle();
        return;
      }
      const refused = error.code === 'ECONNREFUSED' || error.code === 'EPIPE';
      const staleKeepAlive = upstream.reusedSocket && error.code === 'ECONNRESET';
      if (refused || staleKeepAlive) settle(new UpstreamUnavailable(`replica ${target.id}: ${error.code}`));
      else settle(error);
    });
    if (clientGone.aborted) {
      onClientGone();
      return;
    }
    clientGone.addEventListener('abort', onClientGone, { once: true });
    upstream.end(body);
  });
}
