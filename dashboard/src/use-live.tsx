/** A Preact hook over the live stream: the latest data, how the stream is doing, and the refusal that ends it. */
import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from './api';
import type { LiveHandlers, LiveState } from './live';

/** Follows a live view while the component is mounted. */
export function useLive<T>(follow: (handlers: LiveHandlers<T>) => () => void, deps: unknown[], onRefused: (error: ApiError) => void) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [state, setState] = useState<LiveState>('connecting');
  useEffect(() => follow({ data: setData, state: setState, refused: onRefused }), deps);
  return { data, state };
}

/** A line saying how fresh the page is. */
export function LiveIndicator({ state }: { state: LiveState }) {
  const words = { connecting: 'connecting…', live: 'live', polling: 'live updates interrupted: polling until they are back' }[state];
  return (
    <p class={`live ${state}`} role="status" aria-live="polite">
      <span class="dot" aria-hidden="true" /> {words}
    </p>
  );
}
