/**
 * Request ids: every API and gateway request has one, taken from its `x-request-id` header when
 * that is safe to log and pass on (1 to 128 characters of letters, digits and `-_.:@+=`),
 * otherwise made here. The answer carries it back in `x-request-id`, the gateway passes it on to
 * the replica, and every log line about the request has it as `requestId`.
 */
import { randomUUID } from 'node:crypto';

/** The header a request id travels in (in both directions). */
export const REQUEST_ID_HEADER = 'x-request-id';

/** The longest request id accepted from a client. */
export const MAX_REQUEST_ID_LENGTH = 128;

const SAFE_REQUEST_ID = new RegExp(`^[A-Za-z0-9._:@+=-]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/** Whether a client's request id is safe to keep: bounded, no spaces, quotes, slashes or control characters. */
export function isAcceptableRequestId(value: string): boolean {
  return SAFE_REQUEST_ID.test(value);
}

/** The request's id: the client's `x-request-id` when acceptable (the first, if sent twice), else a new UUID. */
export function requestIdFor(header: string | string[] | undefined): string {
  const given = Array.isArray(header) ? header[0] : header;
  return given !== undefined && isAcceptableRequestId(given) ? given : randomUUID();
}
