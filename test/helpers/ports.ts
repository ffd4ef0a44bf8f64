import * as net from 'node:net';

/** Test stacks take their fixed ports from here: below Linux's ephemeral range (32768–60999), which
 * outgoing connections, replicas (`--port 0`) and Temporal's own services draw from, so nothing
 * else running can take a stack's port between the choice and its `listen`. */
const FIXED_PORT_RANGE = { first: 20_000, last: 32_000 };

/**
 * `count` distinct TCP ports below the ephemeral range that were free a moment ago on 127.0.0.1:
 * all are held open until every one is chosen, so no two are the same.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let attempt = 0; ports.length < count; attempt++) {
      if (attempt > 1000) throw new Error(`found only ${ports.length} of ${count} free ports in ${FIXED_PORT_RANGE.first}–${FIXED_PORT_RANGE.last}`);
      const port = FIXED_PORT_RANGE.first + Math.floor(Math.random() * (FIXED_PORT_RANGE.last - FIXED_PORT_RANGE.first));
      if (ports.includes(port)) continue;
      const server = net.createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => resolve(true));
      });
      if (!bound) continue;
      servers.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** A TCP port below the ephemeral range that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
