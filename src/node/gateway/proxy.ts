/** Forwards one buffered request to one replica and streams the answer back. */
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
 * header. Rejects with UpstreamUnavailable when the replica refused or dropped the request
 * before answering (safe to retry elsewhere); once an answer has started, errors end `res`.
 */
export function forwardToReplica(
  target: ProxyTarget,
  deploymentId: string,
  req: http.IncomingMessage,
  body: Buffer,
  res: http.ServerResponse,
): Promise<void> {
  return new Promise((resolve, reject) => {
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
        res.writeHead(answer.statusCode ?? 502, { ...forwardable(answer.headers), [DEPLOYMENT_ID_HEADER]: deploymentId, ...(answer.headers['content-length'] ? { 'content-length': answer.headers['content-length'] } : {}) });
        answer.pipe(res);
        answer.once('end', () => resolve());
        answer.once('error', () => {
          res.destroy();
          resolve();
        });
      },
    );
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        res.destroy();
        resolve();
        return;
      }
      const refused = error.code === 'ECONNREFUSED' || error.code === 'EPIPE';
      const staleKeepAlive = upstream.reusedSocket && error.code === 'ECONNRESET';
      if (refused || staleKeepAlive) reject(new UpstreamUnavailable(`replica ${target.id}: ${error.code}`));
      else reject(error);
    });
    req.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  });
}
