/**
 * A short fault-injection run (test/chaos/engine.ts, the engine of `npm run chaos`): the real
 * stack under steady load, with each process killed once (worker, API, node, Temporal dev
 * server) and promotions and deploys terminated and cancelled through the Temporal CLI, at
 * random moments of pushes, promotions and development updates. Every invariant must hold
 * after every round, and no request may fail while the node is up.
 */
import { strict as assert } from 'node:assert';
import { runChaos } from '../chaos/engine';
import type { FaultKind } from '../chaos/faults';
import { formatReport } from '../chaos/report';

/** One of each process kill, and a terminate and a cancel of the workflows that move traffic and deployments. */
const SHORT_RUN_FAULTS: readonly FaultKind[] = [
  'kill worker',
  'kill api',
  'kill node',
  'kill temporal',
  'terminate promotion',
  'cancel deploy',
  'cancel promotion',
  'terminate deploy',
];

describe('fault injection (real stack, under load)', function () {
  this.timeout(1_200_000);

  it('keeps every invariant through process kills and terminated or cancelled workflows', async () => {
    const seed = Number(process.env.GANTRY_CHAOS_SEED ?? 20261127);
    const lines: string[] = [];
    const report = await runChaos({
      faults: SHORT_RUN_FAULTS.length,
      faultKinds: SHORT_RUN_FAULTS,
      seed,
      log: (line) => lines.push(line),
    });
    const table = formatReport(report);
    for (const kind of SHORT_RUN_FAULTS) assert.ok(report.faults[kind].landed >= 1, `${kind} was injected at least once\n${table}`);
    assert.deepEqual(
      report.violations.map((v) => `[${v.invariant}] round ${v.round}: ${v.description}`),
      [],
      `seed ${seed}\n${table}\n\nprogress:\n${lines.join('\n')}`,
    );
  });
});
