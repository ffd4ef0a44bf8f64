/** The CLI's HTTP client for the management API and the inference gateway. */
import type { Credentials } from './credentials';
import { CLIENT_HEADER } from '../shared/views';
import type { DeploymentView, LogEntry, ModelView } from '../shared/views';

/** An error answer from the API or gateway, with its status and message. */
export class ApiClientError extends Error {
  override name = 'ApiClientError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** An inference answer as the gateway gave it. */
export interface PredictAnswer {
  status: number;
  deploymentId: string | null;
  body: string;
}

/** An inference answer whose body is read as it arrives (a streaming model's chunks one by one). */
export interface PredictStream {
  status: number;
  deploymentId: string | null;
  /** The body's bytes, chunk by chunk as the gateway sends them. */
  chunks: AsyncIterable<Uint8Array>;
}

/** Talks to one Gantry stack with one key. */
export class ApiClient {
  constructor(readonly credentials: Credentials) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.credentials.apiKey ? { authorization: `Api-Key ${this.credentials.apiKey}` } : {}), [CLIENT_HEADER]: 'cli', ...extra };
  }

  /** Calls the management API and returns its JSON, or throws ApiClientError. */
  request<T>(method: string, route: string, body?: unknown | FormData): Promise<T> {
    return this.call(this.credentials.apiUrl, 'the Gantry API', method, route, body);
  }

  /** Calls a JSON route of the inference gateway (wake, the async routes) and returns its JSON, or throws ApiClientError. */
  gatewayRequest<T>(method: string, route: string, body?: unknown): Promise<T> {
    return this.call(this.credentials.gatewayUrl, 'the Gantry gateway', method, route, body);
  }

  private async call<T>(base: string, what: string, method: string, route: string, body?: unknown | FormData): Promise<T> {
    const url = `${base}${route}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: this.headers(body === undefined || body instanceof FormData ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiClientError(
        0,
        'unreachable',
        `cannot reach ${what} at ${base} (${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}); is it running (npm start)?`,
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
      throw new ApiClientError(response.status, error?.code ?? 'error', error?.message ?? `${response.status} ${response.statusText}`, error?.details);
    }
    return json as T;
  }

  getModel(model: string): Promise<ModelView> {
    return this.request('GET', `/v1/models/${encodeURIComponent(model)}`);
  }

  async listModels(): Promise<ModelView[]> {
    return (await this.request<{ models: ModelView[] }>('GET', '/v1/models')).models;
  }

  /** A model's deployments, optionally only those with every `key:value` label. */
  async listDeployments(model: string, labels: string[] = []): Promise<DeploymentView[]> {
    const query = labels.map((label) => `label=${encodeURIComponent(label)}`).join('&');
    const route = `/v1/models/${encodeURIComponent(model)}/deployments${query ? `?${query}` : ''}`;
    return (await this.request<{ deployments: DeploymentView[] }>('GET', route)).deployments;
  }

  getDeployment(model: string, ref: string): Promise<DeploymentView> {
    return this.request('GET', `/v1/models/${encodeURIComponent(model)}/deployments/${encodeURIComponent(ref)}`);
  }

  async logs(model: string, ref: string, tail: number): Promise<LogEntry[]> {
    const route = `/v1/models/${encodeURIComponent(model)}/deployments/${encodeURIComponent(ref)}/logs?tail=${tail}`;
    return (await this.request<{ entries: LogEntry[] }>('GET', route)).entries;
  }

  /** POSTs a JSON body to the gateway; an unreachable gateway is an ApiClientError. */
  private async postToGateway(path: string, body: string): Promise<Response> {
    try {
      return await fetch(`${this.credentials.gatewayUrl}${path}`, {
        method: 'POST',
        headers: this.headers({ 'content-type': 'application/json' }),
        body,
      });
    } catch (error) {
      throw new ApiClientError(0, 'unreachable', `cannot reach the Gantry gateway at ${this.credentials.gatewayUrl} (${(error as Error).message})`);
    }
  }

  /** Posts to an inference path on the gateway (`/models/{id}/...`). */
  async predict(path: string, body: string): Promise<PredictAnswer> {
    const response = await this.postToGateway(path, body);
    return { status: response.status, deploymentId: response.headers.get('x-gantry-deployment-id'), body: await response.text() };
  }

  /** Posts to an inference path on the gateway and hands back the body as it streams in. */
  async predictStream(path: string, body: string): Promise<PredictStream> {
    const response = await this.postToGateway(path, body);
    const stream = response.body;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      if (!stream) return;
      const reader = stream.getReader();
      let received = 0;
      for (;;) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
          throw new ApiClientError(0, 'answer_cut', `the answer stopped before its end, after ${received} bytes (${cause})`);
        }
        if (next.done) return;
        received += next.value.length;
        yield next.value;
      }
    }
    return { status: response.status, deploymentId: response.headers.get('x-gantry-deployment-id'), chunks: chunks() };
  }
}
