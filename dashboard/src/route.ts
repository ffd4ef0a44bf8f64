/** The dashboard's pages live in the URL's hash (`#/`, `#/models/<id>`), so the API's paths stay the API's. */
import { useEffect, useState } from 'preact/hooks';

/** Where the page is. */
export type Route = { page: 'models' } | { page: 'model'; modelId: string };

/** Reads a hash such as `#/models/abc`. */
export function parseRoute(hash: string): Route {
  const match = /^#\/models\/([^/?#]+)/.exec(hash);
  return match ? { page: 'model', modelId: decodeURIComponent(match[1]!) } : { page: 'models' };
}

/** The hash of a model's page. */
export function modelHref(modelId: string): string {
  return `#/models/${encodeURIComponent(modelId)}`;
}

/** The current route, following the hash. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const changed = (): void => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}
