/**
 * `npm run chaos [-- --faults N] [--seed S] [--keep] [--only KIND,KIND…]`: the fault-injection
 * run (./engine.ts); `--only` draws the faults from the kinds named (e.g. `"kill api,kill node"`).
 * Progress goes to stderr, the report (Markdown tables) to stdout. Exits 0 only when no
 * invariant was violated.
 */
import { runChaos, stopChaosRuns } from './engine';
import { FAULT_KINDS, type FaultKind } from './faults';
import { formatReport } from './report';
import { SeededRandom } from './random';

/** The command line's options. */
export interface ChaosArguments {
  faults: number;
  seed: number;
  keep: boolean;
  /** The fault kinds to draw from (all when absent). */
  faultKinds?: FaultKind[];
}

/** Parses `--faults N`, `--seed S` and `--keep`. */
export function parseChaosArguments(argv: string[]): ChaosArguments {
  const parsed: ChaosArguments = { faults: 40, seed: SeededRandom.freshSeed(), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${arg} takes a whole number`);
      return n;
    };
    if (arg === '--faults') parsed.faults = value();
    else if (arg === '--seed') parsed.seed = value();
    else if (arg === '--keep') parsed.keep = true;
    else if (arg === '--only') {
      const kinds = (argv[++i] ?? '').split(',').map((kind) => kind.trim());
      const unknown = kinds.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
      if (unknown.length > 0) throw new Error(`unknown fault kind(s) ${unknown.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
      parsed.faultKinds = kinds as FaultKind[];
    } else throw new Error(`unknown option ${arg}\nusage: npm run chaos -- [--faults N] [--seed S] [--keep] [--only KIND,KIND…]`);
  }
  return parsed;
}

async function main(): Promise<number> {
  let args: ChaosArguments;
  try {
    args = parseChaosArguments(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const started = Date.now();
  const log = (line: string): void => {
    process.stderr.write(`[chaos ${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s] ${line}\n`);
  };
  log(`seed ${args.seed} (repeat with --seed ${args.seed}); at least ${args.faults} faults`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the stack`);
      void stopChaosRuns().finally(() => process.exit(130));
    });
  }
  const report = await runChaos({ ...args, log });
  process.stdout.write(`${formatReport(report)}\n`);
  return report.violations.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`chaos run failed: ${(error as Error).stack ?? error}`);
    process.exit(2);
  },
);
