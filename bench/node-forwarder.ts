/**
 * The least an HTTP proxy written for Node does, for the instruction bench
 * (bench/instructions.ts): raw sockets, one kept-alive connection to the replica per client
 * connection, requests and answers framed by their Content-Length and passed on as they are. No
 * routing, keys, head rewriting, timeouts, logs or metrics: what Node itself costs per proxied
 * request, the floor under any gateway written for it. Not a proxy to use: it understands only
 * Content-Length framing. Prints `listening` once it listens.
 *
 *   node dist/bench/node-forwarder.js <port> <replica port>
 */
import * as net from 'node:net';

/** The end of the message framed at the start of `bytes` (its head and Content-Length body), or -1 while it is incomplete. */
export function framedMessageEnd(bytes: Buffer): number {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd < 0) return -1;
  const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(bytes.toString('latin1', 0, headEnd));
  const end = headEnd + 4 + (length ? Number(length[1]) : 0);
  return bytes.length >= end ? end : -1;
}

/** Passes each whole message arriving on `from` to `to`, keeping a partial one until the rest arrives. */
function forwardMessages(from: net.Socket, to: net.Socket): void {
  let held: Buffer = Buffer.alloc(0);
  from.on('data', (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    for (let end = framedMessageEnd(held); end >= 0; end = framedMessageEnd(held)) {
      to.write(held.subarray(0, end));
      held = held.subarray(end);
    }
  });
}

function main(): void {
  const [port, replicaPort] = process.argv.slice(2).map(Number);
  if (!port || !replicaPort) throw new Error('usage: node-forwarder.js <port> <replica port>');
  const server = net.createServer({ noDelay: true }, (client) => {
    const replica = net.connect({ port: replicaPort, host: '127.0.0.1', noDelay: true });
    forwardMessages(client, replica);
    forwardMessages(replica, client);
    client.on('close', () => replica.destroy());
    replica.on('close', () => client.destroy());
    client.on('error', () => replica.destroy());
    replica.on('error', () => client.destroy());
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
  process.once('SIGTERM', () => process.exit(0));
  process.once('SIGINT', () => process.exit(0));
}

if (require.main === module) main();
