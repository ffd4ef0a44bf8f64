/**
 * The inference gateway (docs/architecture.md §5): authenticates, resolves the path to a deployment
 * (weighted for environments), picks the ready replica with the fewest requests in flight
 * and proxies to it. Wakes deployments (`…/wake`, 202) and passes the async inference routes on
 * to the API. Answers JSON errors: 401, 404, 405, 413, 502, 503, 504. Serves its metrics at
 * `GET /metrics` (docs/metrics.md). Every request has a request id (src/logging/request-id.ts),
 * answered in `x-request-id`, passed on to the replica or the API, and in the access log line
 * written when the request ends.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hashApiKey, keyFromAuthorization } from '../../auth/api-keys';
import { GatewayMetrics, type DeploymentLabels, type ReplicaWaitOutcome, type RequestLabels, type UpstreamErrorKind, type WakeTrigger } from '../../metrics/gateway-metrics';
import { METRICS_PATH, serveMetrics } from '../../metrics/exposition';
import { lineLogger, processLogger, type Logger } from '../../logging/logger';
import { REQUEST_ID_HEADER, requestIdFor } from '../../logging/request-id';
import type { Store } from '../../store/store';
import { describeError } from '../retried-task';
import type { Runtime } from '../runtime/runtime';
import { ApiUnreachable, forwardToApi } from './api-forward';
import { pickLeastInFlight } from './balancer';
import type { Pool } from 'undici';
import {
  canResend,
  forwardToReplica,
  replicaPool,
  RequestBodyTooLarge,
  RETRYABLE_BODY_BYTES,
  StreamedBody,
  UpstreamTimeout,
  UpstreamUnavailable,
  type UpstreamBody,
} from './proxy';
import { parseInferencePath, RoutingTable, type RequestAddress } from './routing-table';

/** Largest request body the gateway accepts. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** How many replicas one request may be tried on when replicas refuse it. */
const MAX_ATTEMPTS = 3;

/** How long and how many requests may wait for a deployment with no ready replica (waking up, restarting). */
export interface WaitLimits {
  timeoutMs: number;
  queueSize: number;
}

/** The limits `npm start` uses (GANTRY_WAKE_TIMEOUT_SECONDS, GANTRY_WAKE_QUEUE_SIZE). */
export const DEFAULT_WAIT_LIMITS: WaitLimits = { timeoutMs: 60_000, queueSize: 256 };

/** What the gateway is built from. */
export interface GatewayDeps {
  store: Store;
  runtime: Pick<Runtime, 'routableReplicas'>;
  /** Called after each refresh with the route generations now applied. */
  onApplied?: (generations: Record<string, number>) => void;
  /** Called for every request routed to a deployment (for metering). */
  onRouted?: (deploymentId: string) => void;
  /**
   * Wakes a sleeping deployment (a request waits for it, or `…/wake` asked); resolves with
   * whether this call woke it (false when it was awake or already waking).
   */
  wake?: (deploymentId: string, reason: string) => Promise<boolean>;
  /** The management API, where the async inference routes are passed on to. */
  apiUrl?: string;
  /** How long the API may take to start answering a request passed on to it (default 30 s). */
  apiTimeoutMs?: number;
  waitLimits?: WaitLimits;
  /** Where the gateway tells what went wrong outside a request (a failed accept); info lines of `logger` by default. */
  log?: (line: string) => void;
  /** Where the gateway counts what it does (a registry of its own unless given). */
  metrics?: GatewayMetrics;
  /** The access log (one line per request) and request failures (the process logger by default). */
  logger?: Logger;
}

/** What the access log line of a request says about where it went, filled in as it is routed. */
interface RequestContext {
  modelId?: string;
  deploymentId?: string;
  environment?: string;
}

/** The longest path an access log line quotes. */
const MAX_LOGGED_PATH = 512;

/** The client disconnected before its answer was complete: nothing more is sent. */
class ClientGone extends Error {
  override name = 'ClientGone';
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string, close = false): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(close ? { connection: 'close' } : {}) });
  res.end(body);
}

/** The request target as a URL: its path and query, read as they are (`//` included); a target that is not a path is refused. */
function requestUrl(target: string | undefined): URL {
  if (!target?.startsWith('/')) throw new RequestError(400, 'bad_request', 'the request target must be a path such as /models/{model_id}/production/predict');
  try {
    return new URL(`http://gateway${target}`);
  } catch {
    throw new RequestError(400, 'bad_request', 'the request target is not a valid path');
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new RequestError(413, 'payload_too_large', `request body is larger than ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; the 413 goes out with Connection: close and the rest is not read.
        req.off('data', onData);
        req.pause();
        reject(new RequestError(413, 'payload_too_large', `request body is larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('close', () => reject(new ClientGone('the client closed the connection while sending its request')));
  });
}

/**
 * The body a request sends on: read whole when its declared length is small (so that a refused
 * connection can be retried on another replica), streamed as it arrives otherwise (chunked, or
 * larger), counted against MAX_BODY_BYTES. 413 at once when the declared length is over it.
 */
function requestBody(req: http.IncomingMessage): Promise<UpstreamBody> | UpstreamBody {
  const declared = req.headers['content-length'];
  const length = declared === undefined ? undefined : Number(declared);
  if (length !== undefined && length > MAX_BODY_BYTES) throw new RequestError(413, 'payload_too_large', `request body is larger than ${MAX_BODY_BYTES} bytes`);
  if (length !== undefined && length <= RETRYABLE_BODY_BYTES) return readBody(req, RETRYABLE_BODY_BYTES);
  return new StreamedBody(req, MAX_BODY_BYTES);
}

/** The inference gateway of one node. */
export class Gateway {
  private table = new RoutingTable([], [], [], []);
  private keys = new Map<string, string>();
  private turn = 0;
  private refreshing: Promise<void> | undefined;
  /** Requests in flight (or waiting for a replica) per deployment: the autoscaler's demand. */
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, number>();
  private readonly lastRequest = new Map<string, number>();
  /** When each deployment was last asked to wake, so that waiting requests ask once a second between them. */
  private readonly lastWake = new Map<string, number>();
  private refreshAgain = false;
  /** Keep-alive connection pools per replica id (with the port they were made for). */
  private readonly pools = new Map<string, { port: number; pool: Pool }>();
  readonly server: http.Server;
  /** What the gateway counts, served at `GET /metrics`. */
  readonly metrics: GatewayMetrics;

  private readonly logger: Logger;

  constructor(private readonly deps: GatewayDeps) {
    this.metrics = deps.metrics ?? new GatewayMetrics();
    this.logger = deps.logger ?? processLogger();
    this.server = http.createServer((req, res) => {
      const requestId = requestIdFor(req.headers[REQUEST_ID_HEADER]);
      // Set on the request itself, so that the replica (or the API) gets the id this answer carries.
      req.headers[REQUEST_ID_HEADER] = requestId;
      res.setHeader(REQUEST_ID_HEADER, requestId);
      const context: RequestContext = {};
      this.logAccess(req, res, requestId, context);
      this.handle(req, res, context).catch((error) => {
        this.logger.error({ requestId, err: error }, `gateway: a request failed unexpectedly: ${(error as Error).message}`);
        res.destroy();
      });
    });
    this.server.keepAliveTimeout = 65_000;
    // After listen: a failed accept (EMFILE) is an 'error' on the server, which must not end the process.
    this.server.on('error', (error) => {
      if (this.server.listening) this.log(`gateway: ${(error as Error).message}`);
    });
  }

  private log(line: string): void {
    (this.deps.log ?? lineLogger(this.logger))(line);
  }

  /**
   * Writes the request's access log line when it ends: method, path (never the query), status,
   * duration, and the model and deployment it went to. A client that left before its answer was
   * complete is logged with `aborted`. Health checks are logged at debug.
   */
  private logAccess(req: http.IncomingMessage, res: http.ServerResponse, requestId: string, context: RequestContext): void {
    const started = performance.now();
    res.once('close', () => {
      const path = (req.url ?? '/').split('?')[0]!.slice(0, MAX_LOGGED_PATH);
      const line = {
        requestId,
        method: req.method,
        path,
        status: res.statusCode,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        ...context,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      const message = `${req.method} ${path} ${res.statusCode}`;
      if (path === '/healthz') this.logger.debug(line, message);
      else this.logger.info(line, message);
    });
  }
  /** Starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    await this.refresh();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Reloads routes, deployments and keys from the store (coalesced when called during a reload). */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        const { store } = this.deps;
        const [models, deployments, environments, routes, keys] = await Promise.all([
          store.listModels(),
          store.listLiveDeployments(),
          store.listAllEnvironments(),
          store.listRoutes(),
          store.listApiKeyHashes(),
        ]);
        this.table = new RoutingTable(
          models.map((m) => m.id),
          deployments,
          environments,
          routes,
          this.table,
        );
        this.keys = keys;
        this.closeLeftPools(new Set(deployments.flatMap((d) => this.deps.runtime.routableReplicas(d.id).map((replica) => replica.id))));
        this.deps.onApplied?.(this.table.appliedGenerations());
      } while (this.refreshAgain);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Stops accepting connections and waits for in-flight requests to finish. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    this.closeLeftPools(new Set());
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, context: RequestContext): Promise<void> {
    // Filled in once the request resolves to a deployment; read when the answer ends.
    const labels: RequestLabels = { model_id: '', deployment_id: '', environment: '' };
    try {
      const url = requestUrl(req.url);
      if (url.pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      if (url.pathname === METRICS_PATH) {
        await serveMetrics(req, res, this.metrics.registry, (hash) => this.keys.has(hash));
        return;
      }
      this.measure(res, labels);
      const key = keyFromAuthorization(req.headers.authorization);
      if (!key || !this.keys.has(hashApiKey(key))) {
        throw new RequestError(401, 'unauthorized', 'missing or invalid API key: send Authorization: Api-Key <key>');
      }
      const route = parseInferencePath(req.headers.host, url.pathname);
      if (!route) throw new RequestError(404, 'not_found', `no inference route at ${url.pathname}`);
      if (route.action !== 'api') {
        context.modelId = route.address.modelId;
        if (route.address.kind === 'environment') context.environment = route.address.environment;
        if (route.address.kind === 'deployment') context.deploymentId = route.address.deploymentId;
      }
      if (route.action === 'api') {
        await this.forwardToApi(`${route.apiPath}${url.search}`, req, res);
        return;
      }
      if (req.method !== 'POST') throw new RequestError(405, 'method_not_allowed', `${route.action} takes POST`);
      if (route.action === 'wake') {
        await this.wake(route.address, res);
        return;
      }
      const address = route.address;
      const resolved = this.table.resolve(address);
      if ('error' in resolved) throw new RequestError(resolved.error.status, resolved.error.code, resolved.error.message);
      const deployment = resolved.deployment;
      labels.model_id = deployment.model_id;
      labels.deployment_id = deployment.id;
      labels.environment = address.kind === 'environment' ? address.environment : '';
      context.deploymentId = deployment.id;
      const target: DeploymentLabels = { model_id: deployment.model_id, deployment_id: deployment.id };
      const body = await requestBody(req);
      this.deps.onRouted?.(deployment.id);
      this.lastRequest.set(deployment.id, Date.now());
      this.active.set(deployment.id, (this.active.get(deployment.id) ?? 0) + 1);
      this.metrics.inFlight.inc(target);
      try {
        await this.awaitReplica(target, deployment.name, deployment.status, res);
        await this.proxy(target, deployment.name, deployment.predict_timeout_seconds, req, body, res);
      } finally {
        this.active.set(deployment.id, (this.active.get(deployment.id) ?? 1) - 1);
        this.metrics.inFlight.dec(target);
      }
    } catch (error) {
      if (error instanceof ClientGone) {
        res.destroy();
      } else if (error instanceof RequestError) {
        const unread = !req.complete;
        sendError(res, error.status, error.code, error.message, unread);
        if (unread) res.once('finish', () => req.socket.destroySoon());
      } else sendError(res, 502, 'bad_gateway', `the replica failed to answer: ${(error as Error).message}`);
    }
  }

  /**
   * Counts the request and observes its latency when its answer ends (or the connection
   * closes first: 499), with the labels as they are by then.
   */
  private measure(res: http.ServerResponse, labels: RequestLabels): void {
    const stop = this.metrics.duration.startTimer();
    res.once('close', () => {
      const status = res.headersSent ? String(res.statusCode) : '499';
      this.metrics.requests.inc({ ...labels, status_code: status });
      stop(labels);
    });
  }

  private countWakeup(target: DeploymentLabels, trigger: WakeTrigger): void {
    this.metrics.wakeups.inc({ ...target, trigger });
  }

  private countUpstreamError(target: DeploymentLabels, kind: UpstreamErrorKind): void {
    this.metrics.upstreamErrors.inc({ ...target, kind });
  }

  /** Requests in flight or waiting for the deployment. */
  inFlight(deploymentId: string): number {
    return this.active.get(deploymentId) ?? 0;
  }

  /** Requests waiting for a ready replica of the deployment (the wake-up queue). */
  queued(deploymentId: string): number {
    return this.waiting.get(deploymentId) ?? 0;
  }

  /** When the last request for the deployment arrived. */
  lastRequestAt(deploymentId: string): number | undefined {
    return this.lastRequest.get(deploymentId);
  }

  /**
   * Holds a request until the deployment has a ready replica: a sleeping deployment is woken,
   * one whose replicas are (re)starting is waited for. Bounded in time and in queue length;
   * a request whose client has gone leaves the queue.
   */
  private async awaitReplica(target: DeploymentLabels, name: string, status: string, res: http.ServerResponse): Promise<void> {
    const deploymentId = target.deployment_id;
    if (this.deps.runtime.routableReplicas(deploymentId).length > 0) return;
    // The response's 'close' before it finished is the client going away.
    const clientGone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) clientGone.abort();
    });
    if (res.destroyed) clientGone.abort();
    const limits = this.deps.waitLimits ?? DEFAULT_WAIT_LIMITS;
    const queued = this.waiting.get(deploymentId) ?? 0;
    if (queued >= limits.queueSize) {
      throw new RequestError(
        503,
        'unavailable',
        `deployment ${name} (${deploymentId}) is ${status === 'SCALED_TO_ZERO' ? 'waking up' : 'starting'} and ${queued} requests already wait for it; retry shortly`,
      );
    }
    this.waiting.set(deploymentId, queued + 1);
    this.metrics.waiting.inc(target);
    const waited = this.metrics.replicaWait.startTimer(target);
    let outcome: ReplicaWaitOutcome = 'ready';
    try {
      const deadline = Date.now() + limits.timeoutMs;
      while (this.deps.runtime.routableReplicas(deploymentId).length === 0) {
        if (clientGone.signal.aborted) {
          outcome = 'client_gone';
          throw new ClientGone('the client left while its request waited for a replica');
        }
        const current = this.table.deployment(deploymentId);
        if (!current) {
          outcome = 'gone';
          throw new RequestError(404, 'not_found', `deployment ${deploymentId} no longer exists`);
        }
        if (current.status === 'INACTIVE' || current.status === 'DEACTIVATING') {
          outcome = 'gone';
          throw new RequestError(404, 'deployment_inactive', `deployment ${name} (${deploymentId}) is deactivated`);
        }
        if (current.desired_replicas === 0 && Date.now() - (this.lastWake.get(deploymentId) ?? 0) > 1000) {
          this.lastWake.set(deploymentId, Date.now());
          // A request still waiting asks again a second later: that is the retry.
          this.deps.wake?.(deploymentId, 'a request is waiting').then(
            (woken) => {
              if (woken) this.countWakeup(target, 'request');
            },
            (error) => this.log(`gateway: waking deployment ${deploymentId} failed (a waiting request asks again in 1 s): ${describeError(error)}`),
          );
        }
        if (Date.now() > deadline) {
          outcome = 'timeout';
          throw new RequestError(503, 'unavailable', `deployment ${name} (${deploymentId}) has no ready replica after ${Math.round(limits.timeoutMs / 1000)} s; retry later`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      this.waiting.set(deploymentId, (this.waiting.get(deploymentId) ?? 1) - 1);
      this.metrics.waiting.dec(target);
      waited({ outcome });
    }
  }

  /**
   * `POST …/wake`: wakes the deployment the address names (for an environment, its current
   * deployment and every deployment its route gives weight) and answers 202 at once with what
   * was woken; a deployment already awake stays as it is.
   */
  private async wake(address: RequestAddress, res: http.ServerResponse): Promise<void> {
    const targets = this.table.wakeTargets(address);
    if ('error' in targets) throw new RequestError(targets.error.status, targets.error.code, targets.error.message);
    const deployments = [];
    for (const deployment of targets.deployments) {
      let woken = false;
      try {
        woken = (await this.deps.wake?.(deployment.id, 'asked by POST …/wake')) ?? false;
      } catch (error) {
        throw new RequestError(503, 'unavailable', `deployment ${deployment.name} (${deployment.id}) could not be woken now (${describeError(error)}); retry shortly`);
      }
      if (woken) {
        this.lastWake.set(deployment.id, Date.now());
        this.countWakeup({ model_id: deployment.model_id, deployment_id: deployment.id }, 'wake_endpoint');
      }
      deployments.push({ id: deployment.id, name: deployment.name, woken });
    }
    const body = JSON.stringify({ model_id: address.modelId, deployments });
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  }

  /** Passes an async inference request on to the API; 503 when the API cannot be reached. */
  private async forwardToApi(apiPath: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const apiUrl = this.deps.apiUrl;
    if (!apiUrl) throw new RequestError(503, 'unavailable', 'the API is not reachable: this gateway was started without its URL');
    try {
      await forwardToApi(apiUrl, apiPath, req, res, this.deps.apiTimeoutMs ?? 30_000);
    } catch (error) {
      if (error instanceof ApiUnreachable) throw new RequestError(503, 'unavailable', `the API is not reachable at ${apiUrl} (${error.message}); retry shortly`);
      throw error;
    }
  }

  /** The keep-alive pool of a replica, made on its first request. */
  private poolOf(replica: { id: string; port: number }): Pool {
    const known = this.pools.get(replica.id);
    if (known && known.port === replica.port) return known.pool;
    if (known) void known.pool.close();
    const pool = replicaPool(replica.port);
    this.pools.set(replica.id, { port: replica.port, pool });
    return pool;
  }

  /** Closes the pools of replicas no longer routable (their requests in flight finish first). */
  private closeLeftPools(routable: ReadonlySet<string>): void {
    for (const [id, { pool }] of this.pools) {
      if (routable.has(id)) continue;
      this.pools.delete(id);
      void pool.close();
    }
  }

  private async proxy(target: DeploymentLabels, name: string, timeoutSeconds: number, req: http.IncomingMessage, body: UpstreamBody, res: http.ServerResponse): Promise<void> {
    const deploymentId = target.deployment_id;
    const tried = new Set<string>();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const replica = pickLeastInFlight(this.deps.runtime.routableReplicas(deploymentId), this.turn++, tried);
      if (!replica || replica.port === undefined) break;
      if (attempt > 0) this.metrics.upstreamRetries.inc(target);
      tried.add(replica.id);
      replica.inFlight++;
      try {
        await forwardToReplica({ id: replica.id, pool: this.poolOf({ id: replica.id, port: replica.port }) }, deploymentId, req, body, res, { timeoutMs: timeoutSeconds * 1000 });
        return;
      } catch (error) {
        if (error instanceof RequestBodyTooLarge) throw new RequestError(413, 'payload_too_large', error.message);
        // Only a refused request is tried elsewhere: a timed-out one may have run.
        if (error instanceof UpstreamTimeout) {
          this.countUpstreamError(target, 'timeout');
          throw new RequestError(504, 'upstream_timeout', `deployment ${name} (${deploymentId}) did not answer within ${timeoutSeconds} s`);
        }
        this.countUpstreamError(target, error instanceof UpstreamUnavailable ? 'unavailable' : 'failed');
        if (!(error instanceof UpstreamUnavailable)) throw error;
        if (!canResend(body)) throw new RequestError(502, 'bad_gateway', `replica ${replica.id} refused the connection after the request body had started streaming`);
      } finally {
        replica.inFlight--;
      }
    }
    throw new RequestError(503, 'unavailable', `deployment ${name} (${deploymentId}) has no ready replica`);
  }
}
