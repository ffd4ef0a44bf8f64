/**
 * Stack children (API, node, worker) run in their own process groups so that Ctrl-C reaches
 * only the supervisor, which stops them in order. If the supervisor itself dies, they notice
 * here and stop too, instead of lingering with their ports bound.
 */
import { processLogger } from '../logging/logger';

/** When started by the supervisor (GANTRY_SUPERVISED=1), calls `stop` once the parent process is gone. */
export function exitWhenParentDies(stop: () => void | Promise<void>, intervalMs = 1000): void {
  if (process.env.GANTRY_SUPERVISED !== '1') return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      processLogger().warn('supervisor is gone: stopping');
      Promise.resolve(stop()).finally(() => process.exit(0));
    }
  }, intervalMs);
  timer.unref();
}
