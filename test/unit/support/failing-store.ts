/** A real store that fails, as SQLite does, while a test says so. */
import Database from 'better-sqlite3';
import type { Store } from '../../../src/store/store';

/** A store whose calls throw SQLITE_BUSY while the test wants them to, counting the failures per method. */
export interface FailingStore {
  store: Store;
  /** Methods that fail now (`*` for all but watch and close). */
  failing: Set<string>;
  /** Makes the next `times` calls of a method fail. */
  failNext(method: string, times?: number): void;
  /** Makes calls of a method wait (before failing or succeeding) until the returned function is called. */
  hold(method: string): () => void;
  /** Calls that failed, per method. */
  failures: Map<string, number>;
}

/** Wraps a store: every method but `watch` and `close` can be made to reject with a SqliteError SQLITE_BUSY. */
export function failingStore(inner: Store): FailingStore {
  const failing = new Set<string>();
  const failures = new Map<string, number>();
  const next = new Map<string, number>();
  const held = new Map<string, Promise<void>>();
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'watch' || property === 'close') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: unknown[]) => {
        await held.get(property);
        const planned = next.get(property) ?? 0;
        if (planned > 0) next.set(property, planned - 1);
        if (planned > 0 || failing.has(property) || failing.has('*')) {
          failures.set(property, (failures.get(property) ?? 0) + 1);
          throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store,
    failing,
    failures,
    failNext: (method, times = 1) => next.set(method, (next.get(method) ?? 0) + times),
    hold: (method) => {
      let release = (): void => {};
      held.set(method, new Promise<void>((resolve) => (release = resolve)));
      return () => {
        held.delete(method);
        release();
      };
    },
  };
}
