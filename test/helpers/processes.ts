/**
 * Finding a stack's processes by their command lines in /proc (Linux), for tests that kill
 * them: the Temporal dev server `npm start` runs under src/stack/bound-to-parent.js.
 */
import * as path from 'node:path';
import { listProcesses, type ProcessInfo } from '../../src/shared/process-table';
import type { TestStack } from './stack';

/**
 * The stack's Temporal dev server: `wrapper` is the supervisor's child (node running
 * bound-to-parent.js), `server` the `temporal server start-dev` process under it. Either is
 * undefined while it is not running (e.g. between a kill and the supervisor's restart). Both
 * are recognised by the stack's own database file on their command lines.
 */
export function temporalDevServerPids(stack: TestStack): { wrapper?: number; server?: number } {
  const databaseFile = path.join(stack.home, 'temporal.db');
  const mine = listProcesses().filter((p) => p.argv.includes(databaseFile) && p.argv.includes('start-dev'));
  const wrapper = mine.find((p) => p.argv.some((arg) => arg.endsWith('bound-to-parent.js')));
  const server = mine.find((p) => p !== wrapper && path.basename(p.argv[0]!) === 'temporal');
  return { wrapper: wrapper?.pid, server: server?.pid };
}

/** The model-server (replica) processes running code from the stack's home, wherever their parent is. */
export function replicaProcesses(stack: TestStack): ProcessInfo[] {
  const builds = path.join(stack.home, 'builds') + path.sep;
  return listProcesses().filter((p) => p.argv.some((arg) => arg.endsWith('gantry_model_server.py')) && p.argv.some((arg) => arg.startsWith(builds)));
}
