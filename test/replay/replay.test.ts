/**
 * The replay suite: every recorded history (test/replay/histories/<set>/<path>.json.gz, recorded
 * from a real dev server by record-histories.ts) replayed against the current workflow code.
 * A change to a workflow's command sequence that is not behind `patched()` makes the replay of
 * the older histories fail with a non-determinism error, here, before an upgrade breaks the
 * workflows that are running.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { installQuietRuntime } from '../helpers/time-skipping';

const HISTORIES_DIR = path.join(PROJECT_ROOT, 'test', 'replay', 'histories');

/** A recorded history, as the Temporal CLI printed it. */
const readHistory = (file: string): any => JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8'));

/** Every recorded history, as `<set>/<path>`. */
function recordedHistories(): { name: string; file: string }[] {
  return fs
    .readdirSync(HISTORIES_DIR, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((set) =>
      fs
        .readdirSync(path.join(HISTORIES_DIR, set.name))
        .filter((file) => file.endsWith('.json.gz'))
        .map((file) => ({ name: `${set.name}/${file.replace(/\.json\.gz$/, '')}`, file: path.join(HISTORIES_DIR, set.name, file) })),
    )
    .sort((a, b) => a.name.localeCompare(b.name));
}

describe('replay: recorded workflow histories against the current code', function () {
  this.timeout(300_000);
  const histories = recordedHistories();

  before(() => installQuietRuntime());

  it('has histories of every workflow type to replay', () => {
    const types = new Set(
      histories.map(({ file }) => {
        const history = readHistory(file) as { events: { workflowExecutionStartedEventAttributes?: { workflowType: { name: string } } }[] };
        return history.events[0]!.workflowExecutionStartedEventAttributes!.workflowType.name;
      }),
    );
    assert.deepEqual([...types].sort(), ['asyncPredictionWorkflow', 'deployWorkflow', 'developmentUpdateWorkflow', 'promotionWorkflow']);
  });

  it('replays every history without a non-determinism error', async () => {
    const failures: string[] = [];
    let replayed = 0;
    const results = Worker.runReplayHistories(
      { workflowsPath: require.resolve('../../src/workflows'), replayName: 'gantry-replay' },
      histories.map(({ name, file }) => ({ workflowId: name, history: historyFromJSON(readHistory(file)) })),
    );
    for await (const result of results) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message.split('\n')[0]}`);
    }
    assert.equal(replayed, histories.length);
    assert.deepEqual(failures, [], `histories that no longer replay:\n${failures.join('\n')}`);
  });
});
