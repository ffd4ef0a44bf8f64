/**
 * The dashboard's live data: `GET /v1/events` read with fetch (an EventSource cannot send the
 * Authorization header, and the key never goes in a URL), parsed by eventsource-parser, and
 * reconnected after a drop. While the stream is down, the same view is polled from the API.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { LiveEvent, ModelDetail, ModelOverview, ModelView } from '../../src/shared/views';
import { api, ApiError, authHeaders } from './api';

/** How the stream is doing, for the page to show. */
export type LiveState = 'connecting' | 'live' | 'polling';

/** What a subscription reports. */
export interface LiveHandlers<T> {
  data(value: T): void;
  state(state: LiveState): void;
  /** The stream was refused for good (401: the key is no longer valid; 404: the model is gone). */
  refused(error: ApiError): void;
}

/** How long to wait before reconnecting, and how often to poll meanwhile. */
const RECONNECT_MS = 2_000;
const POLL_MS = 2_000;

/**
 * Reads a server-sent event stream at `path` until it ends or drops, handing each event over.
 * Answers the API's error when it refused for good (401: the key is no longer valid; 404: gone),
 * or undefined when the stream ended or dropped (the caller reconnects).
 */
async function readStream(path: string, signal: AbortSignal, onEvent: (message: EventSourceMessage) => void): Promise<ApiError | undefined> {
  try {
    const response = await fetch(path, { headers: { ...authHeaders(), Accept: 'text/event-stream' }, signal });
    if (response.status === 401 || response.status === 404) {
      const body = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      return new ApiError(response.status, body.error?.code ?? 'error', body.error?.message ?? response.statusText);
    }
    if (!response.ok || !response.body) return undefined;
    const parser = createParser({ onEvent });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      parser.feed(value);
    }
  } catch {
    return undefined; // dropped, or aborted by the caller
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Follows `GET /v1/events[?model=]` and hands each event's data over; returns a stop function. */
function follow<T>(query: string, event: LiveEvent['event'], poll: () => Promise<T>, handlers: LiveHandlers<T>): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  let pollTimer: ReturnType<typeof setInterval> | undefined;

  const startPolling = (): void => {
    if (pollTimer || stopped) return;
    handlers.state('polling');
    const once = (): void =>
      void poll().then(
        (data) => !stopped && handlers.data(data),
        () => undefined,
      );
    once();
    pollTimer = setInterval(once, POLL_MS);
  };
  const stopPolling = (): void => {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = undefined;
  };

  const connect = async (): Promise<void> => {
    while (!stopped) {
      controller = new AbortController();
      const refusal = await readStream(`/v1/events${query}`, controller.signal, (message) => {
        if (message.event !== event) return;
        stopPolling();
        handlers.state('live');
        handlers.data(JSON.parse(message.data));
      });
      if (refusal) return handlers.refused(refusal);
      if (stopped) return;
      // Dropped: poll until the stream is back.
      startPolling();
      await sleep(RECONNECT_MS);
    }
  };

  handlers.state('connecting');
  void connect();
  return () => {
    stopped = true;
    controller?.abort();
    stopPolling();
  };
}

/** Every model with its deployments, live. */
export function followModels(handlers: LiveHandlers<{ models: ModelOverview[] }>): () => void {
  return follow('', 'models', pollModels, handlers);
}

/** One model in full, live. */
export function followModel(modelId: string, handlers: LiveHandlers<ModelDetail>): () => void {
  return follow(`?model=${encodeURIComponent(modelId)}`, 'model', () => pollModel(modelId), handlers);
}

/** The models view from the REST API (the fallback while the stream is down). */
async function pollModels(): Promise<{ models: ModelOverview[] }> {
  const { models } = await api<{ models: ModelView[] }>('GET', '/v1/models');
  return {
    models: await Promise.all(
      models.map(async (model) => ({ model, deployments: (await api<{ deployments: ModelOverview['deployments'] }>('GET', `/v1/models/${model.id}/deployments`)).deployments })),
    ),
  };
}

/** The model view from the REST API (the fallback while the stream is down). */
async function pollModel(modelId: string): Promise<ModelDetail> {
  const [model, deployments, environments, audit] = await Promise.all([
    api<ModelView>('GET', `/v1/models/${modelId}`),
    api<{ deployments: ModelDetail['deployments'] }>('GET', `/v1/models/${modelId}/deployments`),
    api<{ environments: ModelDetail['environments'] }>('GET', `/v1/models/${modelId}/environments`),
    api<{ audit_logs: ModelDetail['audit_logs'] }>('GET', `/v1/models/${modelId}/audit_logs`),
  ]);
  return { model, temporal_ui: null, deployments: deployments.deployments, environments: environments.environments, audit_logs: audit.audit_logs.slice(0, 100) };
}

/** One line of a deployment's log, as `GET …/logs` answers it. */
export interface LogLine {
  ts: string;
  source: string;
  message: string;
}

/**
 * Follows a deployment's log (`GET …/logs?follow=true`): `reset` with the tail on each
 * (re)connection, then `append` with each new line. Returns a stop function.
 */
export function followLogs(
  modelId: string,
  deploymentId: string,
  handlers: { reset(lines: LogLine[]): void; append(lines: LogLine[]): void; state(state: LiveState): void; refused(error: ApiError): void },
): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  const connect = async (): Promise<void> => {
    while (!stopped) {
      controller = new AbortController();
      handlers.state('connecting');
      let first = true;
      const refusal = await readStream(`/v1/models/${modelId}/deployments/${deploymentId}/logs?follow=true&tail=500`, controller.signal, (message) => {
        if (message.event !== 'log') return;
        const { entries } = JSON.parse(message.data) as { entries: LogLine[] };
        handlers.state('live');
        if (first) handlers.reset(entries);
        else handlers.append(entries);
        first = false;
      });
      if (refusal) return handlers.refused(refusal);
      if (stopped) return;
      handlers.state('polling');
      await sleep(RECONNECT_MS);
    }
  };
  void connect();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
