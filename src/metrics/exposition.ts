/**
 * Prometheus exposition shared by the three processes that serve `GET /metrics` (the node's
 * gateway, the API and the worker): the process metrics every registry carries, and the
 * key-protected endpoint for plain `node:http` servers. docs/metrics.md lists every metric.
 */
import type * as http from 'node:http';
import { collectDefaultMetrics, type Registry } from 'prom-client';
import { hashApiKey, keyFromAuthorization } from '../auth/key-hash';
import { errorBody } from '../shared/error-body';

/** The prefix of every metric Gantry registers. */
export const METRIC_PREFIX = 'gantry_';

/** The path every process serves its metrics at. */
export const METRICS_PATH = '/metrics';

/** The process a registry belongs to: the value of the `process` label on its process metrics. */
export type MetricsProcess = 'node' | 'api' | 'worker';

/**
 * Adds prom-client's process metrics (CPU, memory, event loop lag, GC, handles) to `registry`,
 * named `gantry_process_…`/`gantry_nodejs_…` and labelled with the process they describe.
 */
export function collectProcessMetrics(registry: Registry, process: MetricsProcess): void {
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX, labels: { process } });
}

/** Whether a key's SHA-256 belongs to a valid (unrevoked) API key. */
export type KeyCheck = (secretHash: string) => boolean | Promise<boolean>;

/** Answers a JSON error (`{"error":{"code","message"}}`) with its length, and `headers`. */
export function sendJsonError(res: http.ServerResponse, status: number, code: string, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  const body = errorBody(code, message);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/**
 * Answers `GET /metrics` on a plain HTTP server: 401 JSON without a valid key
 * (`Authorization: Api-Key <key>` or `Bearer <key>`), 405 for another method, else the
 * registry in Prometheus text format.
 */
export async function serveMetrics(req: http.IncomingMessage, res: http.ServerResponse, registry: Registry, isValidKey: KeyCheck): Promise<void> {
  const key = keyFromAuthorization(req.headers.authorization);
  if (!key || !(await isValidKey(hashApiKey(key)))) {
    sendJsonError(res, 401, 'unauthorized', 'missing or invalid API key: send Authorization: Api-Key <key> (or Bearer <key>)');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJsonError(res, 405, 'method_not_allowed', `${METRICS_PATH} takes GET`, { allow: 'GET, HEAD' });
    return;
  }
  const text = await registry.metrics();
  res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(text) });
  res.end(req.method === 'HEAD' ? undefined : text);
}
