/**
 * The chaos harness's own calls to the management API and the gateway. The API (and Temporal
 * behind it) may be down at any moment of a chaos run, so a call that finds no API (connection
 * refused or reset) or an unavailable one (502, 503, 504) is retried until its patience runs
 * out; every other answer is returned as it is.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packModelDirectory } from '../../src/cli/package-archive';
import type { TestStack } from '../helpers/stack';

/** An answer of the API. */
export interface ApiAnswer {
  status: number;
  body: any;
}

/** The API could not be reached (or stayed unavailable) for the whole patience. */
export class ApiOutOfPatience extends Error {
  override name = 'ApiOutOfPatience';

  constructor(
    message: string,
    /** The last status the API answered (502, 503 or 504), or undefined when it never answered. */
    readonly lastStatus: number | undefined,
  ) {
    super(message);
  }
}

/** Statuses that mean "not now": the API or Temporal is restarting. */
const RETRIED_STATUSES = new Set([502, 503, 504]);

/** How long the harness waits for the API by default before giving up on a call. */
export const DEFAULT_PATIENCE_MS = 120_000;

/** How long one attempt may take (promotion actions wait up to 30 s for their effect). */
const ATTEMPT_TIMEOUT_MS = 45_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Parses a body as JSON when it is JSON, else keeps the text. */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Calls to the stack's API that wait out restarts of the API and of Temporal. */
export class PatientApi {
  /** Attempts that found the API down or unavailable and were retried. */
  retries = 0;

  constructor(private readonly stack: TestStack) {}

  /** Calls the API with the admin key, retrying while it is down or answers 502/503/504. */
  async call(method: string, route: string, body?: unknown, patienceMs = DEFAULT_PATIENCE_MS): Promise<ApiAnswer> {
    return this.retrying(`${method} ${route}`, patienceMs, async () => {
      const response = await fetch(`${this.stack.apiUrl}${route}`, {
        method,
        headers: {
          authorization: `Api-Key ${this.stack.apiKey}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      });
      return { status: response.status, body: parseBody(await response.text()) };
    });
  }

  /** Pushes a model directory with the given push options (`POST /v1/deployments`), as the CLI does. */
  async push(dir: string, options: Record<string, unknown>, patienceMs = DEFAULT_PATIENCE_MS): Promise<ApiAnswer> {
    const archive = await packModelDirectory(dir);
    try {
      return await this.retrying(`push ${JSON.stringify(options)}`, patienceMs, async () => {
        const form = new FormData();
        form.append('options', JSON.stringify(options));
        form.append('archive', await fs.openAsBlob(archive.file), 'package.tar.gz');
        const response = await fetch(`${this.stack.apiUrl}/v1/deployments`, {
          method: 'POST',
          headers: { authorization: `Api-Key ${this.stack.apiKey}` },
          body: form,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        return { status: response.status, body: parseBody(await response.text()) };
      });
    } finally {
      fs.rmSync(path.dirname(archive.file), { recursive: true, force: true });
    }
  }

  /** A predict on an inference path of the gateway (one attempt, no retry). */
  async predictOnce(route: string, timeoutMs = 10_000): Promise<{ status: number; deploymentId: string | null; body: unknown }> {
    const response = await fetch(`${this.stack.gatewayUrl}${route}`, {
      method: 'POST',
      headers: { authorization: `Api-Key ${this.stack.apiKey}`, 'content-type': 'application/json' },
      body: '{"chaos":"check"}',
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, deploymentId: response.headers.get('x-gantry-deployment-id'), body: parseBody(await response.text()) };
  }

  private async retrying(what: string, patienceMs: number, attempt: () => Promise<ApiAnswer>): Promise<ApiAnswer> {
    const deadline = Date.now() + patienceMs;
    let pause = 250;
    let last = '';
    let lastStatus: number | undefined;
    for (;;) {
      try {
        const answer = await attempt();
        if (!RETRIED_STATUSES.has(answer.status)) return answer;
        last = `${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`;
        lastStatus = answer.status;
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        last = `${(error as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`;
        lastStatus = undefined;
      }
      if (Date.now() + pause > deadline) {
        throw new ApiOutOfPatience(`${what}: no usable answer within ${Math.round(patienceMs / 1000)} s (last: ${last})`, lastStatus);
      }
      this.retries++;
      await sleep(pause);
      pause = Math.min(pause * 2, 2000);
    }
  }
}
