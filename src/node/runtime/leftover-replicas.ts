/**
 * Replica processes that an earlier run of this node left running. A node that dies outright
 * (SIGKILL, a crash) cannot stop its replicas; each replica is meant to notice and end itself
 * (parent-death signal, parent watch), and this is the repair for one that did not: a starting
 * node finds them by their command line (a model server serving a package under this home's
 * builds) and ends them, with whatever they started, before it starts replicas of its own.
 * Linux only (it reads /proc); one node per GANTRY_HOME.
 */
import * as path from 'node:path';
import { listProcesses } from '../../shared/process-table';

/** A model-server process of this home that is not a child of this node. */
export interface LeftoverReplica {
  pid: number;
  /** Its process group (a replica leads its own, with the processes its model started). */
  processGroup: number;
  /** The package it serves. */
  packageDir: string;
}

/** The model servers (or sandbox launchers about to become one) serving (`serve`) a package under `buildsDir` whose parent is not `nodePid`. */
export function findLeftoverReplicas(buildsDir: string, nodePid: number = process.pid): LeftoverReplica[] {
  const prefix = path.resolve(buildsDir) + path.sep;
  const found: LeftoverReplica[] = [];
  for (const { pid, parentPid, processGroup, argv } of listProcesses()) {
    if (pid === process.pid || parentPid === nodePid) continue;
    // `serve` only: the worker's build runs `check` on a package under builds/ too, and that is not a replica.
    const script = argv.findIndex((arg) => arg.endsWith('gantry_model_server.py'));
    if (script < 0 || argv[script + 1] !== 'serve') continue;
    const option = argv.indexOf('--package', script);
    const packageDir = option < 0 ? undefined : argv[option + 1];
    if (packageDir === undefined || !path.resolve(packageDir).startsWith(prefix)) continue;
    found.push({ pid, processGroup, packageDir });
  }
  return found;
}

/** Ends every leftover replica of `buildsDir` (its whole process group when it leads one); returns those it signalled. */
export function endLeftoverReplicas(buildsDir: string, log: (line: string) => void, nodePid: number = process.pid): LeftoverReplica[] {
  const ended: LeftoverReplica[] = [];
  for (const leftover of findLeftoverReplicas(buildsDir, nodePid)) {
    try {
      process.kill(leftover.processGroup === leftover.pid ? -leftover.pid : leftover.pid, 'SIGKILL');
      ended.push(leftover);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH') log(`node: could not end replica process ${leftover.pid} (${leftover.packageDir}) left by an earlier run of this node: ${code ?? String(error)}`);
    }
  }
  if (ended.length > 0) {
    log(
      `node: ended ${ended.length} replica process${ended.length === 1 ? '' : 'es'} an earlier run of this node left running: ${ended.map((leftover) => `pid ${leftover.pid} (${path.basename(leftover.packageDir)})`).join(', ')}`,
    );
  }
  return ended;
}
