/**
 * `GET /v1/events`: server-sent events for the dashboard, fed by store changes. Without a filter
 * the stream carries `models` (every model at a glance); with `?model=<id or name>` it carries
 * `model` (that model in full). Each is sent at once, then again whenever it has changed.
 */
import { Router, type Response } from 'express';
import type { DeploymentService } from '../../services/deployments';
import type { LiveViews } from '../../services/live';
import type { LiveEvent } from '../../shared/views';
import { eventsQuerySchema } from '../../shared/schemas';
import type { ModelRecord, Store } from '../../store/store';
import { openEventStream, sendEvent } from '../sse';
import { parseInput } from '../validation';
import { processLogger } from '../../logging/logger';

/** What the events route needs. */
export interface EventRoutesDeps {
  store: Store;
  deployments: DeploymentService;
  live: LiveViews;
}

/** One open stream: what it shows and the last data it was sent. */
interface Subscriber {
  res: Response;
  model?: ModelRecord;
  lastSent?: string;
}

/** Builds the event a subscriber should see now. */
async function eventFor(live: LiveViews, subscriber: Subscriber): Promise<LiveEvent> {
  return subscriber.model ? { event: 'model', data: await live.detail(subscriber.model) } : { event: 'models', data: { models: await live.overview() } };
}

/** /v1/events. */
export function eventRoutes({ store, deployments, live }: EventRoutesDeps): Router {
  const router = Router();
  const subscribers = new Set<Subscriber>();
  let unwatch: (() => void) | undefined;
  let sending = false;
  let dirty = false;

  /** Sends each subscriber its view if it changed; views are built once per filter per change. */
  const sendChanges = async (): Promise<void> => {
    if (sending) {
      dirty = true;
      return;
    }
    sending = true;
    try {
      do {
        dirty = false;
        const built = new Map<string, Promise<LiveEvent>>();
        for (const subscriber of subscribers) {
          const key = subscriber.model?.id ?? '';
          if (!built.has(key)) built.set(key, eventFor(live, subscriber));
          send(subscriber, await built.get(key)!);
        }
      } while (dirty);
    } catch (error) {
      processLogger().error({ err: error }, `events: could not build a live view: ${(error as Error).message}`);
    } finally {
      sending = false;
    }
  };

  const send = (subscriber: Subscriber, event: LiveEvent): void => {
    const data = JSON.stringify(event.data);
    if (data === subscriber.lastSent) return;
    subscriber.lastSent = data;
    sendEvent(subscriber.res, event.event, data);
  };

  router.get('/v1/events', async (req, res) => {
    const { model } = parseInput(eventsQuerySchema, req.query, 'events query');
    const subscriber: Subscriber = { res, model: model === undefined ? undefined : await deployments.requireModel(model) };
    openEventStream(res);
    // Subscribed before the first view is built, so that no change can fall between the two.
    subscribers.add(subscriber);
    unwatch ??= store.watch(() => void sendChanges());
    void sendChanges();
    res.on('close', () => {
      subscribers.delete(subscriber);
      if (subscribers.size === 0) {
        unwatch?.();
        unwatch = undefined;
      }
    });
  });

  return router;
}
