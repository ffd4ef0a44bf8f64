/** `Authorization: Api-Key <key>` on every route but /healthz. */
import type { RequestHandler, Response } from 'express';
import { hashApiKey, keyFromAuthorization } from '../auth/key-hash';
import type { Actor } from '../services/deployments';
import { API_CLIENT_SOURCES, CLIENT_HEADER, type ApiClientSource } from '../shared/views';
import type { Store } from '../store/store';
import { ApiError } from './errors';

/** Checks the request's API key and records who is asking, and through what, in `res.locals.actor`. */
export function requireApiKey(store: Store): RequestHandler {
  return async (req, res, next) => {
    const key = keyFromAuthorization(req.header('authorization'));
    if (!key) throw new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Api-Key <key>');
    const record = await store.findApiKeyByHash(hashApiKey(key));
    if (!record) throw new ApiError(401, 'unauthorized', 'invalid API key');
    res.locals.actor = { name: record.name, source: clientSource(req.header(CLIENT_HEADER)) } satisfies Actor;
    next();
  };
}

/** How a call reached the API, from the client's `X-Gantry-Client` (the CLI and the dashboard name themselves; anything else is `api`). */
function clientSource(header: string | undefined): ApiClientSource {
  return API_CLIENT_SOURCES.find((source) => source === header) ?? 'api';
}

/** Who made the request (set by requireApiKey). */
export function actorOf(res: Response): Actor {
  return res.locals.actor as Actor;
}
