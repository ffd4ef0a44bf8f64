/**
 * A ready replica as the gateway sends to it: its requests in flight (the balancer's input), the
 * fast lane's kept-alive connections and the undici pool of the requests the HTTP server passes on.
 */
import * as net from 'node:net';
import type { Pool } from 'undici';
import type { FastUpstream, ReplicaConnection } from './fast-lane';
import { replicaPool } from './proxy';

/**
 * Most connections the fast lane keeps to one replica, busy and idle together; the undici pool
 * opens as many (proxy.ts), and the model server serves 256 at once by default.
 */
export const FAST_CONNECTIONS_PER_REPLICA = 128;

/** How long the fast lane keeps an idle connection to a replica (the model server keeps one 75 s). */
const IDLE_CONNECTION_MS = 60_000;

/** A replica the gateway routes to. */
export class ReplicaUpstream implements FastUpstream {
  /** Requests in flight on it, both lanes. */
  inFlight = 0;
  /** No longer ready: its connections close once their requests end. */
  left = false;
  /** The fast lane's connections not carrying a request now. */
  private readonly idle: net.Socket[] = [];
  /** The fast lane's connections carrying a request now. */
  private busy = 0;
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
    for (let socket = this.idle.pop(); socket; socket = this.idle.pop()) {
      if (socket.readyState !== 'open') continue;
      socket.setTimeout(0);
      return { socket, reused: true };
    }
    const socket = net.connect({ port: this.port, host: '127.0.0.1', noDelay: true });
    // Idle, a connection the replica closes leaves the list; its errors and its idle timeout (set only while idle) end in its close.
    socket.once('close', () => this.forget(socket));
    socket.on('error', destroySocket);
    socket.on('timeout', destroySocket);
    return { socket, reused: false };
  }

  release(socket: net.Socket, reusable: boolean): void {
    this.busy--;
    if (!reusable || this.left || socket.destroyed || this.idle.length + this.busy >= FAST_CONNECTIONS_PER_REPLICA) socket.destroy();
    else {
      // Closed here before the model server closes it (75 s): never a request on a connection it is closing.
      socket.setTimeout(IDLE_CONNECTION_MS);
      this.idle.push(socket);
    }
  }

  private forget(socket: net.Socket): void {
    const index = this.idle.indexOf(socket);
    if (index >= 0) this.idle.splice(index, 1);
  }

  /** Takes it out of routing: closes its idle connections and its pool (requests in flight finish first). */
  retire(): void {
    this.left = true;
    for (const socket of this.idle.splice(0)) socket.destroy();
    this.undiciPool?.close().catch(() => undefined);
  }
}

/** An idle connection's error and timeout handler: it closes. */
function destroySocket(this: net.Socket): void {
  this.destroy();
}
