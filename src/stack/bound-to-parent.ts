/**
 * Runs a program that cannot watch its parent (the Temporal dev server) so that it still
 * stops when the supervisor dies: `node bound-to-parent.js <program> [args…]`. Signals are
 * passed on; the exit code is the program's.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { initProcessLogger } from '../logging/logger';
import { exitWhenParentDies } from './parent-watch';

const [program, ...args] = process.argv.slice(2);
// Its own lines (not the program's, which it passes through) under the program's name.
const log = initProcessLogger(program ? path.basename(program) : 'bound-to-parent');
if (!program) {
  log.fatal('usage: bound-to-parent <program> [args…]');
  process.exit(2);
}
const child = spawn(program, args, { stdio: 'inherit' });
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => child.kill(signal));
child.once('error', (error) => {
  log.fatal({ err: error }, `${program}: ${error.message}`);
  process.exit(127);
});
child.once('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
exitWhenParentDies(
  () =>
    new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
);
