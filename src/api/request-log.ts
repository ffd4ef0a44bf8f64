/**
 * Request ids and the access log of the API: each request gets an id (src/logging/request-id.ts),
 * answered in `x-request-id`, and one log line when it ends with the method, the path (never the
 * query), the route it matched, the status and the duration.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../logging/logger';
import { REQUEST_ID_HEADER, requestIdFor } from '../logging/request-id';

/** The longest path an access log line quotes. */
const MAX_LOGGED_PATH = 512;

/** The logger of one request (its lines carry its `requestId`); set by requestLog. */
export function requestLogger(res: Response): Logger | undefined {
  return res.locals.logger as Logger | undefined;
}

/** The route pattern a request matched (`/v1/models/:model/deployments`), when it matched one. */
function matchedRoute(req: Request): string | undefined {
  const route = (req as Request & { route?: { path?: unknown } }).route;
  return typeof route?.path === 'string' ? `${req.baseUrl}${route.path}` : undefined;
}

/** Gives every request its id and writes its access log line when it ends (health checks at debug). */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const requestId = requestIdFor(req.headers[REQUEST_ID_HEADER]);
    const started = performance.now();
    res.setHeader(REQUEST_ID_HEADER, requestId);
    res.locals.requestId = requestId;
    res.locals.logger = logger.child({ requestId });
    res.once('close', () => {
      const path = req.originalUrl.split('?')[0]!.slice(0, MAX_LOGGED_PATH);
      const route = matchedRoute(req);
      const line = {
        requestId,
        method: req.method,
        path,
        ...(route ? { route } : {}),
        status: res.statusCode,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      const message = `${req.method} ${path} ${res.statusCode}`;
      if (path === '/healthz') logger.debug(line, message);
      else logger.info(line, message);
    });
    next();
  };
}
