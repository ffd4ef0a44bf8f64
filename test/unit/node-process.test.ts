import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../src/shared/project-paths';
import { eventually, freePort } from '../helpers/ports';
import { send } from './support/http';

/**
 * Loaded into the node process before its main: each signal makes the kind of failure a
 * callback can produce, outside any code of the node's.
 */
const FAULTS = `
const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
process.on('SIGUSR2', () => { Promise.reject(new Error('a promise nobody handled')); });
process.on('SIGWINCH', () => { setImmediate(() => { throw new Database.SqliteError('disk I/O error', 'SQLITE_IOERR'); }); });
process.on('SIGHUP', () => { setImmediate(() => { throw new TypeError('a bug'); }); });
`;

describe('the node process (src/node/main.ts)', function () {
  this.timeout(60_000);
  let home: string;
  let child: ChildProcess | undefined;
  let output = '';

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-node-process-'));
    fs.writeFileSync(path.join(home, 'faults.js'), FAULTS);
  });

  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('keeps serving after an unhandled rejection and a SQLite error, and exits 1 after any other uncaught exception', async () => {
    const port = await freePort();
    child = spawn(process.execPath, ['--require', path.join(home, 'faults.js'), path.join(PROJECT_ROOT, 'dist', 'src', 'node', 'main.js')], {
      env: { ...process.env, GANTRY_HOME: home, GANTRY_HOST: '127.0.0.1', GANTRY_GATEWAY_PORT: String(port), GANTRY_SUPERVISED: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const healthz = `http://127.0.0.1:${port}/healthz`;
    await eventually('the gateway up', async () => ((await send(healthz, { method: 'GET' })).status === 200 ? true : undefined));

    child.kill('SIGUSR2');
    await eventually('the rejection logged', async () => (output.includes('node: unhandled rejection (the node keeps running): a promise nobody handled') ? true : undefined));
    assert.equal((await send(healthz, { method: 'GET' })).status, 200);

    child.kill('SIGWINCH');
    await eventually('the store error logged', async () =>
      output.includes('node: store error outside any request (the node keeps running): SQLITE_IOERR: disk I/O error') ? true : undefined,
    );
    assert.equal((await send(healthz, { method: 'GET' })).status, 200);

    child.kill('SIGHUP');
    assert.equal(await exited, 1, output);
    assert.ok(output.includes('node: uncaught exception: a bug'), output);
    assert.ok(output.includes('stopping: draining the gateway and every replica'), output);
  });
});
