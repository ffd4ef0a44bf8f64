/**
 * The gateway's own thread (a worker_thread of the node process): it owns the HTTP server, so
 * that no store call, reconcile pass or replica upkeep of the node's main thread ever sits
 * between a request and its answer. The main thread feeds it routing snapshots and ready
 * replicas over the worker's port; it posts back the route generations it serves, its demand,
 * the requests it routed (for metering) and the wakes it needs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { BatchedDestination } from '../../logging/batched-destination';
import { createLogger, lineLogger } from '../../logging/logger';
import { collectProcessMetrics } from '../../metrics/exposition';
import { Gateway } from './gateway';
import type { FromGatewayThread, GatewayThreadOptions, ToGatewayThread } from './thread-messages';

/** The gateway thread's log lines are written in blocks of this many bytes at least… */
const LOG_BUFFER_BYTES = 8 * 1024;
/** …or this long after a line was logged, whichever comes first. */
const LOG_FLUSH_MS = 200;

/** How often, at most, the counts of routed requests are posted (they only feed the usage meter). */
const ROUTED_REPORT_MS = 100;

/** Runs the gateway on this thread until the main thread asks it to close. */
function runGatewayThread(port: NonNullable<typeof parentPort>, options: GatewayThreadOptions): void {
  const post = (message: FromGatewayThread): void => port.postMessage(message);
  // The access log is buffered: gathered in blocks of LOG_BUFFER_BYTES, written asynchronously
  // (sonic-boom), at most LOG_FLUSH_MS after a line, and on close: never a write per request.
  const destination = new BatchedDestination(pino.destination({ dest: options.logFd, sync: false, minLength: LOG_BUFFER_BYTES }), LOG_BUFFER_BYTES, LOG_FLUSH_MS);
  const logger = createLogger('node', { level: options.logLevel, destination });
  const wakes = new Map<number, { resolve: (woken: boolean) => void; reject: (error: Error) => void }>();
  let nextWakeId = 0;
  const routed = new RoutedCounts((counts) => post({ type: 'routed', counts }));
  const gateway = new Gateway({
    apiUrl: options.apiUrl,
    waitLimits: options.waitLimits,
    logger,
    log: lineLogger(logger),
    onApplied: (generations) => post({ type: 'applied', generations }),
    onDemand: (report) => post({ type: 'demand', report }),
    onRouted: (deploymentId) => routed.add(deploymentId),
    wake: (deploymentId, reason) =>
      new Promise((resolve, reject) => {
        const wakeId = nextWakeId++;
        wakes.set(wakeId, { resolve, reject });
        post({ type: 'wake', wakeId, deploymentId, reason });
      }),
  });
  if (options.processMetrics) collectProcessMetrics(gateway.metrics.registry, 'node');

  port.on('message', (message: ToGatewayThread) => {
    switch (message.type) {
      case 'routing':
        gateway.applyRouting(message.snapshot);
        break;
      case 'replicas':
        gateway.applyReplicas(message.ready);
        break;
      case 'listen':
        gateway.listen(message.port, message.host).then(
          (bound) => post({ type: 'listening', port: bound }),
          (error) => post({ type: 'listen-failed', error: (error as Error).message }),
        );
        break;
      case 'woken': {
        const wake = wakes.get(message.wakeId);
        wakes.delete(message.wakeId);
        if (message.error !== undefined) wake?.reject(new Error(message.error));
        else wake?.resolve(message.woken);
        break;
      }
      case 'close':
        void gateway
          .close()
          .then(() => {
            routed.flush();
            gateway.reportDemand();
            return destination.drain();
          })
          .then(() => {
            post({ type: 'closed' });
            port.close();
          });
        break;
    }
  });
}

/** Routed requests per deployment, posted together at most every ROUTED_REPORT_MS. */
class RoutedCounts {
  private counts: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly report: (counts: Record<string, number>) => void) {}

  /** Counts one request routed to the deployment. */
  add(deploymentId: string): void {
    this.counts[deploymentId] = (this.counts[deploymentId] ?? 0) + 1;
    if (this.timer) return;
    this.timer = setTimeout(flushRouted, ROUTED_REPORT_MS, this);
    this.timer.unref();
  }

  /** Reports what was counted since the last report, if anything. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const counts = this.counts;
    this.counts = {};
    if (Object.keys(counts).length > 0) this.report(counts);
  }
}

/** The routed counts' timer callback (no closure per schedule). */
function flushRouted(counts: RoutedCounts): void {
  counts.flush();
}

if (parentPort) runGatewayThread(parentPort, workerData as GatewayThreadOptions);
