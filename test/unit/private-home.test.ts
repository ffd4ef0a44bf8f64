/** GANTRY_HOME is its owner's only: created 0700, an existing one and its key files tightened. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensurePrivateHome, homePaths } from '../../src/home';

describe('a private GANTRY_HOME', () => {
  let parent: string;
  beforeEach(() => {
    parent = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-home-'));
  });
  afterEach(() => fs.rmSync(parent, { recursive: true, force: true }));

  const modeOf = (file: string): number => fs.statSync(file).mode & 0o777;

  it('creates a new home with mode 0700 and reports nothing to tighten', () => {
    const paths = homePaths(path.join(parent, 'home'));
    assert.deepEqual(ensurePrivateHome(paths), []);
    assert.equal(modeOf(paths.root), 0o700);
  });

  it('tightens an existing home and its key files, and says which', () => {
    const paths = homePaths(path.join(parent, 'home'));
    fs.mkdirSync(paths.root, { mode: 0o755 });
    fs.chmodSync(paths.root, 0o755);
    fs.writeFileSync(paths.adminKeyFile, 'key', { mode: 0o644 });
    fs.chmodSync(paths.adminKeyFile, 0o644);
    fs.writeFileSync(paths.secretsKeyFile, 'key', { mode: 0o600 });
    const tightened = ensurePrivateHome(paths);
    assert.deepEqual(tightened, [`${paths.root} (0755 -> 0700)`, `${paths.adminKeyFile} (0644 -> 0600)`]);
    assert.equal(modeOf(paths.root), 0o700);
    assert.equal(modeOf(paths.adminKeyFile), 0o600);
    assert.equal(modeOf(paths.secretsKeyFile), 0o600);
    assert.deepEqual(ensurePrivateHome(paths), [], 'a second start has nothing to say');
  });
});
