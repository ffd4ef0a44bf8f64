/**
 * A ready replica as the gateway sends to it: its requests in flight (the balancer's input), the
 * fast lane's kept-alive connections and the undici pool of the requests the HTTP server passes on.
 */
import * as net from 'node:net';
import type { Pool } from 'undici';
import type { FastUpstream, ReplicaBorrower, ReplicaConnection } from './fast-lane';
import { replicaPool } from './proxy';

/**
 * Most connections the fast lane keeps to one replica, busy and idle together; the undici pool
 * opens as many (proxy.ts), and the model server serves 256 at once by default.
 */
export const FAST_CONNECTIONS_PER_REPLICA = 128;

/** How long the fast lane keeps an idle connection to a replica, at least (the model server keeps one 75 s)… */
const IDLE_CONNECTION_MS = 60_000;
/** …and how often idle connections are looked at (so at most IDLE_CONNECTION_MS + IDLE_SWEEP_MS). */
const IDLE_SWEEP_MS = 5_000;

/** A kept-alive connection to a replica: its events go to the exchange that borrows it; idle, anything but its close ends it. */
class KeptConnection implements ReplicaConnection {
  connected = false;
  borrower: ReplicaBorrower | undefined;
  /** When it was last given back (ms since the epoch). */
  idleSince = 0;

  constructor(readonly socket: net.Socket) {
    socket.once('connect', () => {
      this.connected = true;
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.borrower) this.borrower.upstreamData(chunk);
      // Bytes no request asked for: the connection cannot be trusted with the next one.
      else socket.destroy();
    });
    socket.on('end', () => this.borrower?.upstreamEnded());
    socket.on('error', (error: Error) => {
      if (this.borrower) this.borrower.upstreamFailed(error);
      else socket.destroy();
    });
  }
}

/** A replica the gateway routes to. */
export class ReplicaUpstream implements FastUpstream {
  /** Requests in flight on it, both lanes. */
  inFlight = 0;
  /** No longer ready: its connections close once their requests end. */
  left = false;
  /** The fast lane's connections not carrying a request now (the most recently given back last). */
  private readonly idle: KeptConnection[] = [];
  /** The fast lane's connections carrying a request now. */
  private busy = 0;
  private idleSweep: NodeJS.Timeout | undefined;
  private undiciPool: Pool | undefined;

  constructor(
    readonly id: string,
    readonly port: number,
  ) {}

  /** The undici pool of the requests the HTTP server passes on (made on first use). */
  get pool(): Pool {
    this.undiciPool ??= replicaPool(this.port);
    return this.undiciPool;
  }

  /** Whether the fast lane may open or borrow one more connection to it. */
  get takesFastRequest(): boolean {
    return !this.left && this.busy < FAST_CONNECTIONS_PER_REPLICA;
  }

  connection(): ReplicaConnection {
    this.busy++;
    for (let connection = this.idle.pop(); connection; connection = this.idle.pop()) {
      if (connection.socket.readyState === 'open') return connection;
    }
    const connection = new KeptConnection(net.connect({ port: this.port, host: '127.0.0.1', noDelay: true }));
    connection.socket.once('close', () => this.forget(connection));
    return connection;
  }

  release(connection: ReplicaConnection, reusable: boolean): void {
    this.busy--;
    const kept = connection as KeptConnection;
    if (!reusable || this.left || kept.socket.destroyed || this.idle.length + this.busy >= FAST_CONNECTIONS_PER_REPLICA) {
      kept.socket.destroy();
      return;
    }
    kept.idleSince = Date.now();
    this.idle.push(kept);
    this.idleSweep ??= setInterval(closeLongIdle, IDLE_SWEEP_MS, this).unref();
  }

  /** Closes the connections idle for IDLE_CONNECTION_MS (before the model server closes them: never a request on a connection it is closing). */
  closeLongIdle(): void {
    const oldest = Date.now() - IDLE_CONNECTION_MS;
    while (this.idle.length > 0 && this.idle[0]!.idleSince <= oldest) this.idle.shift()!.socket.destroy();
    if (this.idle.length === 0) this.stopSweep();
  }

  private forget(connection: KeptConnection): void {
    const index = this.idle.indexOf(connection);
    if (index >= 0) this.idle.splice(index, 1);
  }

  private stopSweep(): void {
    if (this.idleSweep) clearInterval(this.idleSweep);
    this.idleSweep = undefined;
  }

  /** Takes it out of routing: closes its idle connections and its pool (requests in flight finish first). */
  retire(): void {
    this.left = true;
    this.stopSweep();
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
    this.undiciPool?.close().catch(() => undefined);
  }
}

/** The idle sweep's callback (a plain function: no closure per schedule). */
function closeLongIdle(upstream: ReplicaUpstream): void {
  upstream.closeLongIdle();
}
