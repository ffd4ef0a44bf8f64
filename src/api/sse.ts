/** Server-sent event answers: the stream's headers, its keep-alive, and one event at a time. */
import type { Response } from 'express';

/** How often an idle stream sends a comment, so that a dead connection is noticed and proxies keep it open. */
const KEEP_ALIVE_MS = 15_000;
/** What a client waits before reconnecting (the SSE `retry` field). */
const RETRY_MS = 2_000;

/** Answers 200 `text/event-stream` now and keeps the stream alive until the client goes. */
export function openEventStream(res: Response): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(`retry: ${RETRY_MS}\n\n`);
  const keepAlive = setInterval(() => res.destroyed || res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  res.on('close', () => clearInterval(keepAlive));
}

/** Writes one event with its JSON data, unless the client has gone. */
export function sendEvent(res: Response, event: string, json: string): void {
  if (!res.destroyed) res.write(`event: ${event}\ndata: ${json}\n\n`);
}
