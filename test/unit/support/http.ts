/** A plain HTTP client for tests: one connection per request, nothing kept alive. */
import * as http from 'node:http';

/** An answer, its body read whole. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Sends a request and reads the whole answer; rejects if the connection fails or is cut. */
export function send(url: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.body ?? '';
    const request = http.request(
      url,
      { method: options.method ?? 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...options.headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
        response.once('error', reject);
        response.once('aborted', () => reject(new Error('the answer was cut short')));
      },
    );
    request.once('error', reject);
    request.end(body);
  });
}

/** Starts a request and returns it unfinished, so that a test can abort it (the answer, if any, is ignored). */
export function startRequest(url: string, body: string, headers: Record<string, string>): http.ClientRequest {
  const request = http.request(
    url,
    { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
    (response) => response.resume(),
  );
  request.on('error', () => {
    // aborted by the test
  });
  request.end(body);
  return request;
}
