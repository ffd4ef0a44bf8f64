/** `Authorization: Api-Key <key>` on every route but /healthz. */
import type { RequestHandler, Response } from 'express';
import { hashApiKey, keyFromAuthorization } from '../auth/api-keys';
import type { Actor } from '../services/deployments';
import type { Store } from '../store/store';
import { ApiError } from './errors';

/** Checks the request's API key and records who is asking in `res.locals.actor`. */
export function requireApiKey(store: Store): RequestHandler {
  return async (req, res, next) => {
    const key = keyFromAuthorization(req.header('authorization'));
    if (!key) throw new ApiError(401, 'unauthorized', 'missing API key: send Authorization: Api-Key <key>');
    const record = await store.findApiKeyByHash(hashApiKey(key));
    if (!record) throw new ApiError(401, 'unauthorized', 'invalid API key');
    res.locals.actor = { name: record.name } satisfies Actor;
    next();
  };
}

/** Who made the request (set by requireApiKey). */
export function actorOf(res: Response): Actor {
  return res.locals.actor as Actor;
}
