/** A real HTTP server standing in for a replica in the gateway's unit tests. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a stand-in does with a request: answer it (or not) through `res`. */
export type StandInBehaviour = (res: http.ServerResponse, req: http.IncomingMessage) => void;

/** Answers 200 `{"ok":true}` once the request body has been read. */
export const ANSWER_OK: StandInBehaviour = (res, req) => {
  req.once('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
};

/** Never answers (the connection stays open). */
export const NEVER_ANSWER: StandInBehaviour = () => {};

/**
 * A replica stand-in on a port of its own: counts what it received and how each request ended;
 * `behaviour` decides what it does with each request (its body is read, unless the behaviour
 * reads it itself).
 */
export class StandInReplica {
  /** Requests received. */
  received = 0;
  /** Requests answered in full. */
  answered = 0;
  /** Requests whose connection closed before the answer was complete. */
  closedEarly = 0;
  /** Headers of each request received. */
  readonly headers: http.IncomingHttpHeaders[] = [];
  /** What the gateway is told of the replica: its id and its port (0 before `start`). */
  readonly replica = { id: '', port: 0 };
  readonly server = http.createServer((req, res) => {
    this.received++;
    this.headers.push(req.headers);
    res.once('close', () => {
      if (res.writableFinished) this.answered++;
      else this.closedEarly++;
    });
    if (!this.readsBody) req.resume();
    this.behaviour(res, req);
  });

  constructor(
    public behaviour: StandInBehaviour = ANSWER_OK,
    /** Whether `behaviour` reads the request body itself (otherwise it is read and dropped). */
    private readonly readsBody = false,
  ) {}

  /** Listens on a free port of 127.0.0.1 as replica `id`. */
  async start(id: string): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.replica.id = id;
    this.replica.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening (its port then refuses connections), keeping the connections it has. */
  async refuse(): Promise<void> {
    if (this.server.listening) await new Promise((resolve) => this.server.close(resolve));
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await this.refuse();
  }
}
