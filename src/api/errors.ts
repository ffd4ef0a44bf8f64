/**
 * The API's error answers: `{"error": {"code", "message", "details"?}}` with a 4xx status,
 * never a bare 500. Service refusals map to statuses here and only here.
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { processLogger } from '../logging/logger';
import { ServiceError, type ServiceErrorKind } from '../services/errors';
import { isStoreUnavailable } from '../store/store';
import { requestLogger } from './request-log';

/** An error answer with its HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const STATUS_OF: Record<ServiceErrorKind, number> = { not_found: 404, conflict: 409, invalid: 422, unavailable: 503 };

/** Answers 404 for routes that do not exist. */
export const routeNotFound: RequestHandler = (req) => {
  throw new ApiError(404, 'not_found', `no route ${req.method} ${req.path}`);
};

/** Turns any thrown error into the JSON error answer. */
export const errorHandler: ErrorRequestHandler = (error, req, res, _next) => {
  let answer: ApiError;
  if (error instanceof ApiError) answer = error;
  else if (error instanceof ServiceError) answer = new ApiError(STATUS_OF[error.kind], error.kind, error.message, error.details);
  else if (error?.type === 'entity.too.large') answer = new ApiError(413, 'payload_too_large', 'request body is too large');
  else if (error?.type === 'entity.parse.failed') answer = new ApiError(400, 'bad_request', `request body is not valid JSON${jsonErrorHint(error.message)}`);
  else if (typeof error?.status === 'number' && error.status >= 400 && error.status < 500) {
    answer = new ApiError(error.status, 'bad_request', String(error.message));
  } else if (isStoreUnavailable(error)) {
    // Locked past its busy timeout, or the disk is full or failing: not a bug of the request, and
    // a retry may land. Logged, since an operator may need to act.
    (requestLogger(res) ?? processLogger()).warn({ err: error, method: req.method, path: req.path }, `the store is unavailable: ${error.code}`);
    answer = new ApiError(503, 'unavailable', `the store is unavailable (${error.code}); retry shortly`);
    if (!res.headersSent) res.setHeader('retry-after', '1');
  } else {
    (requestLogger(res) ?? processLogger()).error({ err: error, method: req.method, path: req.path }, `unexpected error: ${error?.message ?? String(error)}`);
    answer = new ApiError(500, 'internal', `internal error: ${error?.message ?? String(error)}`);
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(answer.status).json({ error: { code: answer.code, message: answer.message, ...(answer.details === undefined ? {} : { details: answer.details }) } });
};

/** What JSON.parse found wrong, without the piece of the body its message quotes (it may be a secret). */
function jsonErrorHint(message: string | undefined): string {
  const what = /^(Unexpected token '.'|Unexpected end of JSON input|Unexpected non-whitespace character after JSON|Bad control character in string literal)/.exec(
    message ?? '',
  )?.[1];
  const position = /at position (\d+)/.exec(message ?? '')?.[1];
  if (!what) return '';
  return `: ${what}${position === undefined ? '' : ` at position ${position}`}`;
}
