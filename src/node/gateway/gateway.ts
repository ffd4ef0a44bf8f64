/**
 * The inference gateway (docs/architecture.md §5): authenticates, resolves the path to a deployment
 * (weighted for environments), picks the ready replica with the fewest requests in flight
 * and proxies to it. Wakes deployments (`…/wake`, 202) and passes the async inference routes on
 * to the API. Answers JSON errors: 401, 404, 405, 413, 502, 503, 504. Serves its metrics at
 * `GET /metrics` (docs/metrics.md). Every request has a request id (src/logging/request-id.ts),
 * answered in `x-request-id`, passed on to the replica or the API, and in the access log line
 * written when the request ends. It routes from what is pushed into it (routing snapshots, ready
 * replicas): no store, no runtime; in the node it runs on its own thread (gateway-thread.ts).
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { keyFromAuthorization } from '../../auth/key-hash';
import {
  GatewayMetrics,
  type RequestSeries,
  type DeploymentLabels,
  type ReplicaWaitOutcome,
  type RequestLabels,
  type UpstreamErrorKind,
  type WakeTrigger,
} from '../../metrics/gateway-metrics';
import { METRICS_PATH, sendJsonError, serveMetrics } from '../../metrics/exposition';
import { HotPathLines, jsonString, spacedJsonString, tenthsText } from '../../logging/hot-path-lines';
import { lineLogger, processLogger, type Logger } from '../../logging/logger';
import { REQUEST_ID_HEADER, requestIdFor } from '../../logging/request-id';
import { describeError } from '../retried-task';
import { ApiUnreachable, forwardToApi } from './api-forward';
import { pickLeastInFlight } from './balancer';
import { FastConnection, KEEP_ALIVE_TIMEOUT_MS, rawJsonError, type FastLaneHost, type FastOutcome, type FastRequest } from './fast-lane';
import { KeyHashCache } from './key-cache';
import { ReplicaUpstream } from './replica-upstream';
import type { RequestHead } from './request-head';
import { canResend, forwardToReplica, RequestBodyTooLarge, RETRYABLE_BODY_BYTES, StreamedBody, UpstreamTimeout, UpstreamUnavailable, type UpstreamBody } from './proxy';
import { InferencePathCache, RoutingTable, type RequestAddress, type RoutedDeployment } from './routing-table';
import { EMPTY_ROUTING, type DemandReport, type DeploymentDemand, type ReadyReplicas, type RoutingSnapshot } from './routing-snapshot';

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

/** How often, at most, the gateway reports its demand (when it changed). */
export const DEMAND_REPORT_MS = 100;

/** How long a deployment that waiting requests asked to wake is left before they ask again. */
const WAKE_RETRY_MS = 1000;

/**
 * What the gateway is built from. It reads no store and no runtime: the node pushes routing
 * snapshots (`applyRouting`) and ready replicas (`applyReplicas`) into it.
 */
export interface GatewayDeps {
  /** Called after each routing snapshot is applied, with the route generations the gateway now serves. */
  onApplied?: (generations: Record<string, number>) => void;
  /** Called with the gateway's demand, at most every DEMAND_REPORT_MS while it changes. */
  onDemand?: (report: DemandReport) => void;
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

/** A request as it goes: its id and start, where it went (filled in as it is routed) and its metric labels once it is measured. */
interface RequestContext {
  requestId: string;
  started: number;
  /** Set once the request counts in the metrics (not health checks, not `/metrics`). */
  labels: RequestLabels | undefined;
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
  sendJsonError(res, status, code, message, close ? { connection: 'close' } : {});
}

/** The answer to a request that would wait for a replica while the gateway closes. */
const SHUTTING_DOWN = 'the gateway is shutting down; retry on another node or in a moment';

/** How long a connection whose request could not be parsed stays open for the client to read the answer. */
const MALFORMED_REQUEST_LINGER_MS = 2000;

/**
 * A request Node's HTTP parser refused before the gateway saw it (a method HTTP does not know,
 * a malformed request line or header, headers over the limit, a request that took too long):
 * answered like any gateway error, JSON with a code, and the connection closed. What the client
 * still sends is read and dropped meanwhile: closing with unread data would reset the
 * connection, and a client still sending its body could lose the answer.
 */
function answerMalformedRequest(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large', 'the request headers are over the size limit']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'the request did not arrive in time']
        : [400, 'bad_request', `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'}); send a standard method, a request line and headers`];
  socket.resume();
  socket.end(rawJsonError(status, code, message, '', true));
  setTimeout(() => socket.destroy(), MALFORMED_REQUEST_LINGER_MS).unref();
}

/** A request target split into its path and its query (`?…`, or empty). */
interface RequestTarget {
  pathname: string;
  search: string;
}

/** Characters after which a path needs a URL parser's normalization: dot segments, backslashes, a fragment. */
const NEEDS_NORMALIZING = /\/\.|\\|#/;

/**
 * The request target's path and query, read as they are (`//` included); a target that is not a
 * path is refused. A plain path is split at its `?`; one with dot segments, backslashes or a
 * fragment goes through the URL parser, which normalizes them.
 */
function requestTarget(target: string | undefined): RequestTarget {
  if (target === undefined || target.charCodeAt(0) !== 47)
    throw new RequestError(400, 'bad_request', 'the request target must be a path such as /models/{model_id}/production/predict');
  if (!NEEDS_NORMALIZING.test(target)) {
    const query = target.indexOf('?');
    return query < 0 ? { pathname: target, search: '' } : { pathname: target.slice(0, query), search: target.slice(query) };
  }
  try {
    const url = new URL(`http://gateway${target}`);
    return { pathname: url.pathname, search: url.search };
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
    // The request's 'close' follows every request's 'end' too: only one before it is a client gone
    // (and only then is an error made: capturing its stack costs more than the rest of this read).
    const onClose = (): void => reject(new ClientGone('the client closed the connection while sending its request'));
    req.on('data', onData);
    req.once('end', () => {
      req.off('close', onClose);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.once('error', reject);
    req.once('close', onClose);
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

/** A prediction on the fast lane, with what the gateway keeps of it. */
interface FastPrediction extends FastRequest {
  deployment: RoutedDeployment;
  books: RequestBooks;
  started: number;
  demand: DeploymentDemand;
  /** The replica chosen when the request was admitted: its first try. */
  firstChoice: ReplicaUpstream;
}

/** A deployment's metric labels and counts, made once per deployment (and environment) a request is addressed to. */
interface RequestBooks {
  target: DeploymentLabels;
  labels: RequestLabels;
  series: RequestSeries;
  /** Its requests in flight, as the gauge shows them. */
  inFlight: { value: number };
  /** The access log's fields naming the model, the deployment and the environment (JSON members, each after a comma). */
  accessFields: string;
}

/** What an access log line tells of a request. */
interface AccessLine {
  requestId: string;
  method: string | undefined;
  /** The request target, its query left out when logged. */
  target: string;
  status: number;
  elapsedMs: number;
  modelId?: string;
  deploymentId?: string;
  environment?: string;
  /** The model, deployment and environment fields made already (then the three above are not read). */
  routedFields?: string;
  aborted: boolean;
}

/** A request waiting for its deployment to have a ready replica. */
interface Waiter {
  target: DeploymentLabels;
  res: http.ServerResponse;
  timer: NodeJS.Timeout;
  started: number;
  resolve: () => void;
  reject: (error: Error) => void;
  onClientClose: () => void;
}

/** The response's 'close' before it finished is the client going away. */
function clientLeft(res: http.ServerResponse): boolean {
  return res.destroyed && !res.writableFinished;
}

/**
 * The inference gateway of one node, fed by the node: `applyRouting` with each routing snapshot,
 * `applyReplicas` with each change of the ready replicas. It reports back the route generations
 * it serves (`onApplied`), its demand (`onDemand`), each routed request (`onRouted`) and wakes
 * (`wake`).
 */
export class Gateway {
  private table = new RoutingTable(EMPTY_ROUTING);
  private keyHashes: ReadonlySet<string> = new Set();
  private readonly keyCache = new KeyHashCache();
  /** Inference paths parsed once each. */
  private readonly paths = new InferencePathCache();
  /** Request labels and counts per deployment (a snapshot's deployment objects: they go with it). */
  private readonly books = new WeakMap<RoutedDeployment, Map<string, RequestBooks>>();
  private turn = 0;
  /** Deployment id → its ready replicas, as last pushed. */
  private ready = new Map<string, ReplicaUpstream[]>();
  /** Replica id → its upstream, for every ready replica. */
  private readonly upstreams = new Map<string, ReplicaUpstream>();
  /** Replicas no longer ready that still have requests in flight. */
  private readonly departed = new Set<ReplicaUpstream>();
  /** Demand per deployment: the autoscaler's input. */
  private readonly demand = new Map<string, DeploymentDemand>();
  private demandTimer: NodeJS.Timeout | undefined;
  /** Requests waiting for a ready replica, per deployment. */
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** When each deployment was last asked to wake, so that waiting requests ask once a second between them. */
  private readonly lastWake = new Map<string, number>();
  /** Per deployment, the timer that asks again to wake it while requests still wait. */
  private readonly wakeRetries = new Map<string, NodeJS.Timeout>();
  /** Set by `close`: a request that would wait for a replica is answered 503 instead. */
  private closing = false;
  readonly server: http.Server;
  /** The HTTP server's own handling of a new connection, where the fast lane hands connections over. */
  private readonly httpConnection: (socket: Socket) => void;
  /** Client connections the fast lane has (not those it handed to the HTTP server). */
  private readonly fastConnections = new Map<Socket, FastConnection<FastPrediction, ReplicaUpstream>>();
  /** The fast lane's view of the gateway (fast-lane.ts). */
  private readonly fastLane: FastLaneHost<FastPrediction, ReplicaUpstream> = {
    admit: (head) => this.admitFast(head),
    pick: (request, tried) => this.pickFast(request, tried),
    done: (request, upstream, error) => this.doneFast(request, upstream, error),
    unavailable: (request) => [503, 'unavailable', noReadyReplica(request.deployment)],
    timedOut: (request) => noAnswerInTime(request.deployment),
    finish: (request, head, outcome) => this.finishFast(request, head, outcome),
    handOff: (socket, unread) => this.handOff(socket, unread),
    closing: () => this.closing,
  };
  /** What the gateway counts, served at `GET /metrics`. */
  readonly metrics: GatewayMetrics;

  private readonly logger: Logger;
  /** The access log: a line per request, on the logger's destination. */
  private readonly accessLog: HotPathLines;
  private readonly waitLimits: WaitLimits;

  constructor(private readonly deps: GatewayDeps = {}) {
    this.metrics = deps.metrics ?? new GatewayMetrics();
    this.logger = deps.logger ?? processLogger();
    this.accessLog = new HotPathLines(this.logger);
    this.waitLimits = deps.waitLimits ?? DEFAULT_WAIT_LIMITS;
    this.server = http.createServer((req, res) => this.accept(req, res));
    this.server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    // After listen: a failed accept (EMFILE) is an 'error' on the server, which must not end the process.
    this.server.on('error', (error) => {
      if (this.server.listening) this.log(`gateway: ${(error as Error).message}`);
    });
    this.server.on('clientError', answerMalformedRequest);
    // Each connection goes to the fast lane first; the HTTP server gets those it hands over.
    const [httpConnection] = this.server.listeners('connection') as ((socket: Socket) => void)[];
    if (this.server.listenerCount('connection') !== 1 || !httpConnection)
      throw new Error("the HTTP server's connection handling is not what the gateway's fast lane expects (one 'connection' listener)");
    this.httpConnection = httpConnection;
    this.server.removeAllListeners('connection');
    this.server.on('connection', (socket: Socket) => this.acceptConnection(socket));
  }

  /** A new client connection: the fast lane's until it hands it over. */
  private acceptConnection(socket: Socket): void {
    this.fastConnections.set(socket, new FastConnection(socket, this.fastLane));
    socket.once('close', () => this.fastConnections.delete(socket));
  }

  /** Gives a connection to the HTTP server, the bytes the fast lane read and left first. */
  private handOff(socket: Socket, unread: Buffer): void {
    this.fastConnections.delete(socket);
    socket.pause();
    if (unread.length > 0) socket.unshift(unread);
    this.httpConnection.call(this.server, socket);
    socket.resume();
  }

  /**
   * Takes a request on the fast lane when it is a prediction with a valid key for a deployment
   * with a ready replica that can take one more of the fast lane's connections (nothing to
   * answer but the replica's answer), and counts it as the HTTP server's path does; else
   * undefined, and the HTTP server takes it (and answers 401, 404, waits for a wake…).
   */
  private admitFast(head: RequestHead): FastPrediction | undefined {
    if (this.closing) return undefined;
    const route = this.paths.parse(head.host, head.pathname);
    if (route?.action !== 'predict') return undefined;
    const key = keyFromAuthorization(head.authorization);
    if (!key || !this.keyCache.isValid(key, this.keyHashes)) return undefined;
    const resolved = this.table.resolve(route.address);
    if ('error' in resolved) return undefined;
    const deployment = resolved.deployment;
    const firstChoice = pickLeastInFlight(this.ready.get(deployment.id) ?? [], this.turn);
    if (!firstChoice?.takesFastRequest) return undefined;
    this.turn++;
    const environment = route.address.kind === 'environment' ? route.address.environment : undefined;
    this.metrics.countFastLane();
    const books = this.booksOf(deployment, environment ?? '');
    const demand = this.routed(deployment, books);
    return {
      requestId: requestIdFor(head.requestId),
      deploymentId: deployment.id,
      timeoutMs: deployment.predict_timeout_seconds * 1000,
      deployment,
      books,
      started: performance.now(),
      demand,
      firstChoice,
    };
  }

  /** The replica a fast-lane request tries next: the one chosen at its admission, then the least busy ready one not tried, up to MAX_ATTEMPTS. */
  private pickFast(request: FastPrediction, tried: ReadonlySet<string> | undefined): ReplicaUpstream | undefined {
    let upstream: ReplicaUpstream | undefined = request.firstChoice;
    if (tried) {
      if (tried.size >= MAX_ATTEMPTS) return undefined;
      upstream = pickLeastInFlight(this.ready.get(request.deploymentId) ?? [], this.turn++, tried);
      if (!upstream?.takesFastRequest) return undefined;
      this.metrics.upstreamRetries.inc(request.books.target);
    }
    upstream.inFlight++;
    return upstream;
  }

  /** A fast-lane try on a replica is over (with how it failed, if it did). */
  private doneFast(request: FastPrediction, upstream: ReplicaUpstream, error: UpstreamErrorKind | undefined): void {
    this.endTry(upstream);
    if (error) this.countUpstreamError(request.books.target, error);
  }

  /** A try on a replica is over: its count in flight, and its departure once its last request ends. */
  private endTry(upstream: ReplicaUpstream): void {
    upstream.inFlight--;
    if (upstream.left && upstream.inFlight === 0) this.departed.delete(upstream);
    this.demandChanged();
  }

  /** A fast-lane request is over: its demand, its metrics and its access log line, as `finish` writes them for the HTTP server's. */
  private finishFast(request: FastPrediction, head: RequestHead, outcome: FastOutcome): void {
    this.routedEnded(request.books, request.demand);
    const elapsedMs = performance.now() - request.started;
    request.books.series.observe(String(outcome.status), elapsedMs / 1000);
    this.writeAccessLine({
      requestId: request.requestId,
      method: 'POST',
      target: head.target,
      status: outcome.status,
      elapsedMs,
      routedFields: request.books.accessFields,
      aborted: outcome.aborted,
    });
  }

  /** Takes a request: its id (accepted or made, answered and passed on), its access log line, then its handling. */
  private accept(req: http.IncomingMessage, res: http.ServerResponse): void {
    const requestId = requestIdFor(req.headers[REQUEST_ID_HEADER]);
    // Set on the request itself, so that the replica (or the API) gets the id this answer carries.
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const context: RequestContext = { requestId, started: performance.now(), labels: undefined };
    res.once('close', () => this.finish(req, res, context));
    this.handle(req, res, context).catch((error) => {
      this.logger.error({ requestId, err: error }, `gateway: a request failed unexpectedly: ${(error as Error).message}`);
      res.destroy();
    });
  }

  private log(line: string): void {
    (this.deps.log ?? lineLogger(this.logger))(line);
  }

  /**
   * When the request ends: counts it in the metrics (when it was measured) and writes its access
   * log line: method, path (never the query), status, duration, and the model and deployment it
   * went to. A client that left before its answer was complete is logged with `aborted` (and
   * counted 499 when no answer had started). Health checks are logged at debug.
   */
  private finish(req: http.IncomingMessage, res: http.ServerResponse, context: RequestContext): void {
    const elapsedMs = performance.now() - context.started;
    if (context.labels) this.metrics.observeRequest(context.labels, res.headersSent ? String(res.statusCode) : '499', elapsedMs / 1000);
    this.writeAccessLine({
      requestId: context.requestId,
      method: req.method,
      target: req.url ?? '/',
      status: res.statusCode,
      elapsedMs,
      modelId: context.modelId,
      deploymentId: context.deploymentId,
      environment: context.environment,
      aborted: !res.writableFinished,
    });
  }

  /** Writes a request's access log line (health checks at debug). */
  private writeAccessLine(access: AccessLine): void {
    const query = access.target.indexOf('?');
    const path = (query < 0 ? access.target : access.target.slice(0, query)).slice(0, MAX_LOGGED_PATH);
    const level = path === '/healthz' ? 'debug' : 'info';
    if (!this.accessLog.enabled(level)) return;
    const method = access.method ?? '';
    const methodJson = jsonString(method);
    const pathJson = jsonString(path);
    let fields = `"requestId":${jsonString(access.requestId)},"method":${methodJson},"path":${pathJson},"status":${access.status},"durationMs":${tenthsText(access.elapsedMs)}`;
    fields += access.routedFields ?? routedAccessFields(access.modelId, access.deploymentId, access.environment);
    if (access.aborted) fields += ',"aborted":true';
    this.accessLog.write(level, fields, spacedJsonString(methodJson, pathJson, access.status));
  }

  /** Starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Serves from a new routing snapshot: routes, deployments and keys (a key it drops is refused
   * from the next request on). Tells `onApplied` the generations now served; requests waiting
   * for a deployment that is gone or deactivated are answered 404; a sleeping one is woken.
   */
  applyRouting(snapshot: RoutingSnapshot): void {
    this.table = new RoutingTable(snapshot, this.table);
    this.keyHashes = new Set(snapshot.keyHashes);
    this.deps.onApplied?.(this.table.appliedGenerations());
    for (const deploymentId of this.waiters.keys()) this.settleWaitersByRouting(deploymentId);
    this.forgetDeletedDeployments();
  }

  /** Drops what is kept of the deployments the snapshot no longer has (those with requests still in flight, when their last one ends). */
  private forgetDeletedDeployments(): void {
    for (const deploymentId of [...this.demand.keys(), ...this.lastWake.keys()]) this.forgetIfDeleted(deploymentId);
  }

  /** Drops the demand and wake time of a deployment the routing no longer has, once nothing of it is in flight or waiting. */
  private forgetIfDeleted(deploymentId: string): void {
    if (this.table.deployment(deploymentId)) return;
    const demand = this.demand.get(deploymentId);
    if (demand && (demand.inFlight > 0 || demand.queued > 0)) return;
    this.lastWake.delete(deploymentId);
    if (this.demand.delete(deploymentId)) this.demandChanged();
  }

  /**
   * Routes to these ready replicas from now on (a pool per replica, made on first sight;
   * the pools of replicas that left are closed once their requests end) and releases the
   * requests waiting for a deployment that now has one.
   */
  applyReplicas(ready: ReadyReplicas): void {
    const next = new Map<string, ReplicaUpstream[]>();
    const seen = new Set<string>();
    for (const [deploymentId, replicas] of Object.entries(ready)) {
      const upstreams: ReplicaUpstream[] = [];
      for (const replica of replicas) {
        seen.add(replica.id);
        upstreams.push(this.upstreamFor(replica.id, replica.port));
      }
      if (upstreams.length > 0) next.set(deploymentId, upstreams);
    }
    for (const upstream of this.upstreams.values()) if (!seen.has(upstream.id)) this.retire(upstream);
    this.ready = next;
    for (const deploymentId of [...this.waiters.keys()]) if (next.has(deploymentId)) this.releaseWaiters(deploymentId, 'ready');
  }

  /** The upstream of a ready replica: the one it had, or a new pool (first sight, or a new port). */
  private upstreamFor(id: string, port: number): ReplicaUpstream {
    const known = this.upstreams.get(id);
    if (known && known.port === port) return known;
    if (known) this.retire(known);
    const upstream = new ReplicaUpstream(id, port);
    this.upstreams.set(id, upstream);
    return upstream;
  }

  /** Takes a replica out of routing and closes its connections (requests in flight on it finish first). */
  private retire(upstream: ReplicaUpstream): void {
    if (this.upstreams.get(upstream.id) === upstream) this.upstreams.delete(upstream.id);
    upstream.retire();
    if (upstream.inFlight > 0) this.departed.add(upstream);
  }

  /**
   * Stops accepting connections, answers the requests waiting for a replica 503 (no replica
   * comes to a gateway that is closing), waits for the requests in flight to finish, then
   * closes every pool.
   */
  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      for (const connection of this.fastConnections.values()) connection.closeIfIdle();
    });
    for (const deploymentId of [...this.waiters.keys()]) {
      this.releaseWaiters(deploymentId, 'shutdown', new RequestError(503, 'unavailable', SHUTTING_DOWN));
    }
    await closed;
    for (const upstream of [...this.upstreams.values()]) this.retire(upstream);
    for (const timer of this.wakeRetries.values()) clearTimeout(timer);
    this.wakeRetries.clear();
    if (this.demandTimer) clearTimeout(this.demandTimer);
    this.demandTimer = undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, context: RequestContext): Promise<void> {
    try {
      const url = requestTarget(req.url);
      if (url.pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      if (url.pathname === METRICS_PATH) {
        await serveMetrics(req, res, this.metrics.registry, (hash) => this.keyHashes.has(hash));
        return;
      }
      // Measured from here; the labels are filled in once the request resolves to a deployment.
      const labels: RequestLabels = { model_id: '', deployment_id: '', environment: '' };
      context.labels = labels;
      const key = keyFromAuthorization(req.headers.authorization);
      if (!key || !this.keyCache.isValid(key, this.keyHashes)) {
        throw new RequestError(401, 'unauthorized', 'missing or invalid API key: send Authorization: Api-Key <key>');
      }
      const route = this.paths.parse(req.headers.host, url.pathname);
      if (!route) throw new RequestError(404, 'not_found', `no inference route at ${url.pathname}`);
      if (route.action === 'api') {
        await this.forwardToApi(`${route.apiPath}${url.search}`, req, res);
        return;
      }
      context.modelId = route.address.modelId;
      if (route.address.kind === 'environment') context.environment = route.address.environment;
      if (route.address.kind === 'deployment') context.deploymentId = route.address.deploymentId;
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
      await this.predict(deployment, labels.environment, req, res);
    } catch (error) {
      this.answerFailure(error, req, res);
    }
  }

  /** Sends a prediction to a ready replica of the deployment (waiting for one if it has none), counted in its demand. */
  private async predict(deployment: RoutedDeployment, environment: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pending = requestBody(req);
    const body = Buffer.isBuffer(pending) || pending instanceof StreamedBody ? pending : await pending;
    const books = this.booksOf(deployment, environment);
    const target = books.target;
    const demand = this.routed(deployment, books);
    try {
      const waiting = this.awaitReplica(target, deployment, res);
      if (waiting) await waiting;
      await this.proxy(target, deployment, req, body, res);
    } finally {
      this.routedEnded(books, demand);
    }
  }

  /** Counts a request routed to the deployment (usage, demand, the in-flight gauge); returns its demand. */
  private routed(deployment: RoutedDeployment, books: RequestBooks): DeploymentDemand {
    this.deps.onRouted?.(deployment.id);
    const demand = this.demandOf(deployment.id);
    demand.lastRequestAt = Date.now();
    demand.inFlight++;
    this.demandChanged();
    books.inFlight.value++;
    return demand;
  }

  /** A routed request is over: its demand and the in-flight gauge go down. */
  private routedEnded(books: RequestBooks, demand: DeploymentDemand): void {
    demand.inFlight--;
    this.demandChanged();
    this.forgetIfDeleted(books.target.deployment_id);
    books.inFlight.value--;
  }

  /** The labels and counts of requests to `deployment` addressed to `environment` (empty: to the deployment itself), made on first use. */
  private booksOf(deployment: RoutedDeployment, environment: string): RequestBooks {
    let byEnvironment = this.books.get(deployment);
    if (!byEnvironment) {
      byEnvironment = new Map();
      this.books.set(deployment, byEnvironment);
    }
    let books = byEnvironment.get(environment);
    if (!books) {
      const target = { model_id: deployment.model_id, deployment_id: deployment.id };
      const labels = { ...target, environment };
      const accessFields = routedAccessFields(deployment.model_id, deployment.id, environment === '' ? undefined : environment);
      books = { target, labels, series: this.metrics.seriesOf(labels), inFlight: this.metrics.inFlightOf(target), accessFields };
      byEnvironment.set(environment, books);
    }
    return books;
  }

  /** Answers a request that failed: its error status, nothing for a client that left, 502 for the unexpected. */
  private answerFailure(error: unknown, req: http.IncomingMessage, res: http.ServerResponse): void {
    if (error instanceof ClientGone) {
      res.destroy();
    } else if (error instanceof RequestError) {
      const unread = !req.complete;
      sendError(res, error.status, error.code, error.message, unread);
      if (unread) res.once('finish', () => req.socket.destroySoon());
    } else sendError(res, 502, 'bad_gateway', `the replica failed to answer: ${(error as Error).message}`);
  }

  private countWakeup(target: DeploymentLabels, trigger: WakeTrigger): void {
    this.metrics.wakeups.inc({ ...target, trigger });
  }

  private countUpstreamError(target: DeploymentLabels, kind: UpstreamErrorKind): void {
    this.metrics.upstreamErrors.inc({ ...target, kind });
  }

  private demandOf(deploymentId: string): DeploymentDemand {
    let demand = this.demand.get(deploymentId);
    if (!demand) {
      demand = { inFlight: 0, queued: 0 };
      this.demand.set(deploymentId, demand);
    }
    return demand;
  }

  /** Schedules a demand report (one per DEMAND_REPORT_MS at most, whatever the number of changes). */
  private demandChanged(): void {
    if (this.demandTimer || !this.deps.onDemand) return;
    this.demandTimer = setTimeout(reportDemand, DEMAND_REPORT_MS, this);
    this.demandTimer.unref();
  }

  /** Reports the demand now (the coalescing timer's callback). */
  reportDemand(): void {
    this.demandTimer = undefined;
    this.deps.onDemand?.(this.demandReport());
  }

  /** The demand as it is now: per deployment, and the requests in flight per replica. */
  demandReport(): DemandReport {
    const replicas: Record<string, number> = {};
    for (const upstream of this.upstreams.values()) if (upstream.inFlight > 0) replicas[upstream.id] = upstream.inFlight;
    for (const upstream of this.departed) if (upstream.inFlight > 0) replicas[upstream.id] = upstream.inFlight;
    return { deployments: Object.fromEntries([...this.demand].map(([id, demand]) => [id, { ...demand }])), replicas };
  }

  /** Requests in flight or waiting for the deployment. */
  inFlight(deploymentId: string): number {
    return this.demand.get(deploymentId)?.inFlight ?? 0;
  }

  /** Requests waiting for a ready replica of the deployment (the wake-up queue). */
  queued(deploymentId: string): number {
    return this.demand.get(deploymentId)?.queued ?? 0;
  }

  /** When the last request for the deployment arrived. */
  lastRequestAt(deploymentId: string): number | undefined {
    return this.demand.get(deploymentId)?.lastRequestAt;
  }

  /** Requests the gateway has in flight on a replica. */
  replicaInFlight(replicaId: string): number {
    const upstream = this.upstreams.get(replicaId) ?? [...this.departed].find((departed) => departed.id === replicaId);
    return upstream?.inFlight ?? 0;
  }

  /**
   * Holds a request until the deployment has a ready replica (undefined when it has one now):
   * a sleeping deployment is woken, one whose replicas are (re)starting is waited for. Bounded
   * in time and in queue length; released by the push that brings a ready replica, answered
   * 404 by the snapshot that removes or deactivates the deployment; a request whose client has
   * gone leaves the queue.
   */
  private awaitReplica(target: DeploymentLabels, deployment: RoutedDeployment, res: http.ServerResponse): Promise<void> | undefined {
    const deploymentId = deployment.id;
    if (this.ready.has(deploymentId)) return undefined;
    if (this.closing) throw new RequestError(503, 'unavailable', SHUTTING_DOWN);
    let waiters = this.waiters.get(deploymentId);
    const queued = waiters?.size ?? 0;
    if (queued >= this.waitLimits.queueSize) {
      throw new RequestError(
        503,
        'unavailable',
        `deployment ${deployment.name} (${deploymentId}) is ${deployment.status === 'SCALED_TO_ZERO' ? 'waking up' : 'starting'} and ${queued} requests already wait for it; retry shortly`,
      );
    }
    if (!waiters) {
      waiters = new Set();
      this.waiters.set(deploymentId, waiters);
    }
    const set = waiters;
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        target,
        res,
        started: performance.now(),
        timer: setTimeout(
          () =>
            this.finishWait(
              waiter,
              'timeout',
              new RequestError(
                503,
                'unavailable',
                `deployment ${deployment.name} (${deploymentId}) has no ready replica after ${Math.round(this.waitLimits.timeoutMs / 1000)} s; retry later`,
              ),
            ),
          this.waitLimits.timeoutMs,
        ),
        resolve,
        reject,
        onClientClose: () => {
          if (clientLeft(res)) this.finishWait(waiter, 'client_gone', new ClientGone('the client left while its request waited for a replica'));
        },
      };
      set.add(waiter);
      res.on('close', waiter.onClientClose);
      this.demandOf(deploymentId).queued++;
      this.demandChanged();
      this.metrics.waiting.inc(target);
      if (clientLeft(res)) waiter.onClientClose();
      else this.wakeForWaiters(deploymentId);
    });
  }

  /** Takes a request out of the wait queue with its outcome: on its way to a replica, or answered with `error`. */
  private finishWait(waiter: Waiter, outcome: ReplicaWaitOutcome, error?: Error): void {
    const deploymentId = waiter.target.deployment_id;
    const waiters = this.waiters.get(deploymentId);
    if (!waiters?.delete(waiter)) return;
    if (waiters.size === 0) this.waiters.delete(deploymentId);
    clearTimeout(waiter.timer);
    waiter.res.off('close', waiter.onClientClose);
    this.demandOf(deploymentId).queued--;
    this.demandChanged();
    this.metrics.waiting.dec(waiter.target);
    this.metrics.replicaWait.observe({ ...waiter.target, outcome }, (performance.now() - waiter.started) / 1000);
    if (error) waiter.reject(error);
    else waiter.resolve();
  }

  /** Ends the wait of every request queued for the deployment. */
  private releaseWaiters(deploymentId: string, outcome: ReplicaWaitOutcome, error?: Error): void {
    for (const waiter of [...(this.waiters.get(deploymentId) ?? [])]) this.finishWait(waiter, outcome, error);
  }

  /** After a routing snapshot: a deployment gone or deactivated answers its waiters 404; a sleeping one is woken. */
  private settleWaitersByRouting(deploymentId: string): void {
    const current = this.table.deployment(deploymentId);
    if (!current) {
      this.releaseWaiters(deploymentId, 'gone', new RequestError(404, 'not_found', `deployment ${deploymentId} no longer exists`));
    } else if (current.status === 'INACTIVE' || current.status === 'DEACTIVATING') {
      this.releaseWaiters(deploymentId, 'gone', new RequestError(404, 'deployment_inactive', `deployment ${current.name} (${deploymentId}) is deactivated`));
    } else {
      this.wakeForWaiters(deploymentId);
    }
  }

  /**
   * Asks the node to wake a deployment that requests wait for while it has no replica wanted
   * (at most once a second), and sets a timer to ask again while they still wait.
   */
  private wakeForWaiters(deploymentId: string): void {
    const deployment = this.table.deployment(deploymentId);
    if (deployment?.desired_replicas !== 0 || !this.waiters.has(deploymentId)) return;
    if (Date.now() - (this.lastWake.get(deploymentId) ?? 0) > WAKE_RETRY_MS) {
      this.lastWake.set(deploymentId, Date.now());
      const target = { model_id: deployment.model_id, deployment_id: deploymentId };
      this.deps.wake?.(deploymentId, 'a request is waiting').then(
        (woken) => {
          if (woken) this.countWakeup(target, 'request');
        },
        (error) => this.log(`gateway: waking deployment ${deploymentId} failed (a waiting request asks again in 1 s): ${describeError(error)}`),
      );
    }
    if (!this.wakeRetries.has(deploymentId)) this.wakeRetries.set(deploymentId, setTimeout(retryWake, WAKE_RETRY_MS, this, deploymentId));
  }

  /** The wake retry timer fired: asks again if requests still wait for a deployment that is still asleep. */
  retryWake(deploymentId: string): void {
    this.wakeRetries.delete(deploymentId);
    this.wakeForWaiters(deploymentId);
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

  /**
   * Sends the request to the ready replica with the fewest requests in flight; a replica that
   * refused the connection is left for another (while the body can be sent again), up to
   * MAX_ATTEMPTS. A timeout is a 504 and is never retried: the replica may have run it.
   */
  private async proxy(target: DeploymentLabels, deployment: RoutedDeployment, req: http.IncomingMessage, body: UpstreamBody, res: http.ServerResponse): Promise<void> {
    const deploymentId = deployment.id;
    const timeoutSeconds = deployment.predict_timeout_seconds;
    let tried: Set<string> | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const upstream = pickLeastInFlight(this.ready.get(deploymentId) ?? [], this.turn++, tried);
      if (!upstream) break;
      if (attempt > 0) this.metrics.upstreamRetries.inc(target);
      upstream.inFlight++;
      try {
        await forwardToReplica(upstream, deploymentId, req, body, res, { timeoutMs: timeoutSeconds * 1000 });
        return;
      } catch (error) {
        if (error instanceof RequestBodyTooLarge) throw new RequestError(413, 'payload_too_large', error.message);
        // Only a refused request is tried elsewhere: a timed-out one may have run.
        if (error instanceof UpstreamTimeout) {
          this.countUpstreamError(target, 'timeout');
          throw new RequestError(504, 'upstream_timeout', noAnswerInTime(deployment));
        }
        this.countUpstreamError(target, error instanceof UpstreamUnavailable ? 'unavailable' : 'failed');
        if (!(error instanceof UpstreamUnavailable)) throw error;
        if (!canResend(body)) throw new RequestError(502, 'bad_gateway', `replica ${upstream.id} refused the connection after the request body had started streaming`);
        tried ??= new Set();
        tried.add(upstream.id);
      } finally {
        this.endTry(upstream);
      }
    }
    throw new RequestError(503, 'unavailable', noReadyReplica(deployment));
  }
}

/** The 503 message of a request no ready replica could take. */
function noReadyReplica(deployment: RoutedDeployment): string {
  return `deployment ${deployment.name} (${deployment.id}) has no ready replica`;
}

/** The 504 message of a request its replica did not answer within the deployment's predict timeout. */
function noAnswerInTime(deployment: RoutedDeployment): string {
  return `deployment ${deployment.name} (${deployment.id}) did not answer within ${deployment.predict_timeout_seconds} s`;
}

/** The access log's fields naming where a request went (those known), as JSON members each after a comma. */
function routedAccessFields(modelId: string | undefined, deploymentId: string | undefined, environment: string | undefined): string {
  let fields = '';
  if (modelId !== undefined) fields += `,"modelId":${jsonString(modelId)}`;
  if (deploymentId !== undefined) fields += `,"deploymentId":${jsonString(deploymentId)}`;
  if (environment !== undefined) fields += `,"environment":${jsonString(environment)}`;
  return fields;
}

/** The demand report timer's callback (a plain function: no closure per schedule). */
function reportDemand(gateway: Gateway): void {
  gateway.reportDemand();
}

/** The wake retry timer's callback. */
function retryWake(gateway: Gateway, deploymentId: string): void {
  gateway.retryWake(deploymentId);
}
