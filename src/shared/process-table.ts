/**
 * The processes of this machine as Linux's /proc shows them: pid, parent, process group and
 * command line. Processes that end while being read, zombies (no command line) and processes
 * this user cannot read are left out; empty where there is no /proc.
 */
import * as fs from 'node:fs';

/** One process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  parentPid: number;
  processGroup: number;
  /** The command line, one argument per element. */
  argv: string[];
}

/** Every live process whose command line this user can read. */
export function listProcesses(): ProcessInfo[] {
  if (!fs.existsSync('/proc')) return [];
  const processes: ProcessInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = fs
        .readFileSync(`/proc/${entry}/cmdline`, 'utf8')
        .split('\0')
        .filter((arg) => arg !== '');
      if (argv.length === 0) continue;
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields 4 and 5 (parent, process group), counted after the command's name, which may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      processes.push({ pid: Number(entry), parentPid: Number(fields[1]), processGroup: Number(fields[2]), argv });
    } catch {
      // the process ended while we looked
    }
  }
  return processes;
}
