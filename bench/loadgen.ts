/**
 * Load generator: sends steady traffic to an inference URL and counts the answers by the
 * deployment that served them (x-gantry-deployment-id) and by status. Used by the promotion
 * tests (zero failed requests while traffic moves) and runnable on its own:
 *
 *   node dist/bench/loadgen.js --url http://127.0.0.1:8081/models/<id>/production/predict \
 *     --rate 50 --duration 30 [--api-key KEY] [--data '{"x":1}']
 */
import * as http from 'node:http';
import { DEPLOYMENT_ID_HEADER } from '../src/shared/constants';

/** One answer (or failure to get one). */
export interface Sample {
  /** ms since the generator started. */
  at: number;
  /** HTTP status, or 0 when the request failed without an answer. */
  status: number;
  deploymentId: string | null;
  latencyMs: number;
  error?: string;
}

/** What the generator is pointed at. */
export interface LoadOptions {
  url: string;
  apiKey?: string;
  /** Requests per second, sent at even intervals. */
  rate: number;
  /** Requests in flight at most; beyond it a tick is skipped (and counted). */
  maxInFlight?: number;
  body?: string;
}

/** Totals of a run. */
export interface LoadSummary {
  sent: number;
  answered: number;
  ok: number;
  failed: number;
  skipped: number;
  byStatus: Record<string, number>;
  byDeployment: Record<string, number>;
}

/** Steady traffic at a fixed rate until stopped. */
export class LoadGenerator {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private skipped = 0;
  private sent = 0;
  private startedAt = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: LoadOptions) {}

  /** Starts sending. */
  start(): void {
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.round(1000 / this.options.rate)));
  }

  /** Stops sending and waits for the requests in flight. */
  async stop(): Promise<LoadSummary> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.pending]);
    this.agent.destroy();
    return this.summary();
  }

  /** ms since start. */
  elapsed(): number {
    return Date.now() - this.startedAt;
  }

  /** Totals so far (or of the samples from `sinceMs` on). */
  summary(sinceMs = 0): LoadSummary {
    const samples = this.samples.filter((s) => s.at >= sinceMs);
    const byStatus: Record<string, number> = {};
    const byDeployment: Record<string, number> = {};
    for (const s of samples) {
      byStatus[String(s.status)] = (byStatus[String(s.status)] ?? 0) + 1;
      if (s.deploymentId) byDeployment[s.deploymentId] = (byDeployment[s.deploymentId] ?? 0) + 1;
    }
    const ok = samples.filter((s) => s.status >= 200 && s.status < 300).length;
    return { sent: sinceMs === 0 ? this.sent : samples.length, answered: samples.length, ok, failed: samples.length - ok, skipped: this.skipped, byStatus, byDeployment };
  }

  /** The samples that were not 2xx. */
  failures(): Sample[] {
    return this.samples.filter((s) => s.status < 200 || s.status >= 300);
  }

  private tick(): void {
    if (this.inFlight >= (this.options.maxInFlight ?? 64)) {
      this.skipped++;
      return;
    }
    this.sent++;
    this.inFlight++;
    const request = this.send().finally(() => {
      this.inFlight--;
      this.pending.delete(request);
    });
    this.pending.add(request);
  }

  private send(): Promise<void> {
    const at = this.elapsed();
    const start = process.hrtime.bigint();
    const body = this.options.body ?? '{"load":true}';
    return new Promise((resolve) => {
      const done = (status: number, deploymentId: string | null, error?: string): void => {
        this.samples.push({ at, status, deploymentId, latencyMs: Number(process.hrtime.bigint() - start) / 1e6, ...(error ? { error } : {}) });
        resolve();
      };
      const request = http.request(
        this.options.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            ...(this.options.apiKey ? { authorization: `Api-Key ${this.options.apiKey}` } : {}),
          },
          timeout: 30_000,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            done(status, (response.headers[DEPLOYMENT_ID_HEADER] as string | undefined) ?? null, status >= 300 ? Buffer.concat(chunks).toString().slice(0, 300) : undefined);
          });
          response.on('error', (error) => done(0, null, error.message));
        },
      );
      request.on('timeout', () => request.destroy(new Error('timed out')));
      request.on('error', (error) => done(0, null, error.message));
      request.end(body);
    });
  }
}

/** Prints a per-second table and the totals for a run from the command line. */
async function main(argv: string[]): Promise<void> {
  const arg = (name: string, fallback?: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : fallback;
  };
  const url = arg('url');
  if (!url) throw new Error('usage: loadgen --url URL [--rate 50] [--duration 30] [--api-key KEY] [--data JSON]');
  const generator = new LoadGenerator({ url, rate: Number(arg('rate', '50')), apiKey: arg('api-key', process.env.GANTRY_API_KEY), body: arg('data') });
  const seconds = Number(arg('duration', '30'));
  generator.start();
  for (let second = 1; second <= seconds; second++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const window = generator.samples.filter((s) => s.at >= (second - 1) * 1000 && s.at < second * 1000);
    const byDeployment: Record<string, number> = {};
    for (const s of window) byDeployment[s.deploymentId ?? `status ${s.status}`] = (byDeployment[s.deploymentId ?? `status ${s.status}`] ?? 0) + 1;
    console.log(
      `${String(second).padStart(4)}s  ${Object.entries(byDeployment)
        .map(([k, v]) => `${k}: ${v}`)
        .join('  ')}`,
    );
  }
  console.log(JSON.stringify(await generator.stop(), null, 2));
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error) => {
    console.error((error as Error).message);
    process.exit(1);
  });
}
