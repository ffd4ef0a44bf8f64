/**
 * Calls to Gantry's API from the dashboard: same origin, the API key from this tab's
 * sessionStorage in `Authorization: Api-Key`, never in a URL; errors carry the API's own words.
 */

import { CLIENT_HEADER } from '../../src/shared/constants';

const KEY_ITEM = 'gantry.api-key';

/** The API key this tab signed in with, if any. */
export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_ITEM);
}

/** Keeps the key for this tab only (closing the tab forgets it). */
export function storeKey(key: string): void {
  sessionStorage.setItem(KEY_ITEM, key);
}

/** Forgets the key (sign-out). */
export function forgetKey(): void {
  sessionStorage.removeItem(KEY_ITEM);
}

/** An answer other than 2xx, with the message the API gave. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The headers every API call sends. */
export function authHeaders(key = storedKey()): Record<string, string> {
  // The dashboard names itself, so that the audit log can say an action came from it.
  return { [CLIENT_HEADER]: 'dashboard', ...(key ? { Authorization: `Api-Key ${key}` } : {}) };
}

/** Reads an error answer as the API words it ({"error": {"code", "message"}}), or its status line. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) return new ApiError(response.status, body.error.code ?? 'error', body.error.message);
  } catch {
    // not JSON: fall through
  }
  return new ApiError(response.status, 'error', text.trim() || `${response.status} ${response.statusText}`);
}

/** Sends a JSON request to the API and answers its JSON (undefined for 204). */
export async function api<T>(method: string, path: string, body?: unknown, key?: string): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: { ...authHeaders(key), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** What went wrong, in words for the page. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
