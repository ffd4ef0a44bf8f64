/**
 * Finding a stack's processes by their command lines in /proc (Linux), for tests that kill
 * them: the Temporal dev server `npm start` runs under src/stack/bound-to-parent.js.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestStack } from './stack';

/** One process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  parentPid: number;
  /** The command line, one argument per element. */
  argv: string[];
}

/** Every process this user can read in /proc (processes that end while being read are skipped). */
export function listProcesses(): ProcessInfo[] {
  const processes: ProcessInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parentPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = fs
        .readFileSync(`/proc/${entry}/cmdline`, 'utf8')
        .split('\0')
        .filter((arg) => arg !== '');
      if (argv.length > 0) processes.push({ pid: Number(entry), parentPid, argv });
    } catch {
      // the process ended while we looked
    }
  }
  return processes;
}

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
