/**
 * Passes a request on to the management API and streams its answer back: the gateway's async
 * inference routes (async_predict, async_request, async_queue_status) are the API's, so that
 * one base URL serves all of inference, as with Baseten.
 */
import * as http from 'node:http';

/** The API could not be reached (refused, reset or silent before answering); nothing reached the client. */
export class ApiUnreachable extends Error {
  override name = 'ApiUnreachable';
}

// Per connection, not per request: these are not passed on (Node sets its own).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

/** The end-to-end headers of a request or an answer. */
function endToEnd(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const result: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) result[name] = value;
  }
  return result;
}

/**
 * Sends `req` (method, end-to-end headers including Authorization, the body streamed as it
 * arrives) to `apiPath` (with its query) on the API at `apiUrl`, and pipes the API's status,
 * headers and body to `res`. Rejects with ApiUnreachable when the API did not start answering
 * (connection refused or reset, or no answer within `timeoutMs`); once the answer has started,
 * a failure cuts `res` short. When the client leaves, the request to the API is destroyed and
 * the promise resolves.
 */
export function forwardToApi(apiUrl: string, apiPath: string, req: http.IncomingMessage, res: http.ServerResponse, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      res.off('close', onClientClose);
      if (error) reject(error);
      else resolve();
    };
    // A fresh connection each time (no keep-alive): a POST must never meet a socket the API just closed.
    const upstream = http.request(new URL(apiPath, apiUrl), { method: req.method, headers: endToEnd(req.headers), agent: false }, (answer) => {
      clearTimeout(timer);
      if (settled) {
        answer.resume();
        return;
      }
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      answer.pipe(res);
      answer.once('end', () => settle());
      answer.once('error', () => {
        res.destroy();
        settle();
      });
    });
    const timer = setTimeout(() => {
      upstream.destroy();
      settle(new ApiUnreachable(`the API did not answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const onClientClose = (): void => {
      if (res.writableFinished) return;
      upstream.destroy();
      settle();
    };
    res.on('close', onClientClose);
    // `on`, not `once`: a ClientRequest 'error' with no listener would crash the process.
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      if (res.headersSent) {
        res.destroy();
        settle();
        return;
      }
      settle(new ApiUnreachable(error.code ?? error.message));
    });
    req.pipe(upstream);
  });
}
