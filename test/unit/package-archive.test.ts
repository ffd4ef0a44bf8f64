import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import { packageFiles, packModelDirectory } from '../../src/cli/package-archive';
import { unpackArchive } from '../../src/build/builder';
import { BuildError } from '../../src/build/build-error';
import { DEFAULT_PACKAGE_LIMITS } from '../../src/shared/constants';

describe('push archives', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-pack-'));
    const write = (file: string, text = 'x'): void => {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), text);
    };
    write('config.yaml', 'model_name: t\n');
    write('model/model.py', 'class Model: pass\n');
    write('model/__pycache__/model.cpython-311.pyc');
    write('.git/HEAD');
    write('.venv/bin/python');
    write('data/weights.bin');
    write('data/scratch/tmp.txt');
    write('notes.log');
    write('.gantryignore', '*.log\ndata/scratch/\n');
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('leaves out .git, __pycache__, .venv and what .gantryignore lists', () => {
    assert.deepEqual(packageFiles(dir), ['config.yaml', 'data/weights.bin', 'model/model.py']);
  });

  it('round-trips through unpackArchive', async () => {
    const { file, files } = await packModelDirectory(dir);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-'));
    try {
      await unpackArchive(file, out, DEFAULT_PACKAGE_LIMITS);
      assert.equal(fs.readFileSync(path.join(out, 'model/model.py'), 'utf8'), 'class Model: pass\n');
      assert.equal(files.length, 3);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('refuses archives holding links', async () => {
    fs.symlinkSync('/etc/passwd', path.join(dir, 'model', 'link'));
    const archive = path.join(dir, '..', `${path.basename(dir)}-links.tar.gz`);
    await tar.c({ gzip: true, file: archive, cwd: dir }, ['model']);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-'));
    try {
      await assert.rejects(
        unpackArchive(archive, out, DEFAULT_PACKAGE_LIMITS),
        (error: unknown) => error instanceof BuildError && error.kind === 'INVALID_ARCHIVE' && /links/.test(error.message),
      );
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmSync(archive, { force: true });
    }
  });

  it('refuses something that is not a tar.gz', async () => {
    const bogus = path.join(dir, 'bogus.tar.gz');
    fs.writeFileSync(bogus, 'not a tarball');
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-'));
    try {
      await assert.rejects(unpackArchive(bogus, out, DEFAULT_PACKAGE_LIMITS), (error: unknown) => error instanceof BuildError && error.kind === 'INVALID_ARCHIVE');
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('stops at GANTRY_PACKAGE_MAX_FILES and removes what it unpacked', async () => {
    const { file } = await packModelDirectory(dir);
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-')), 'package');
    try {
      await assert.rejects(
        unpackArchive(file, out, { maxUnpackedBytes: DEFAULT_PACKAGE_LIMITS.maxUnpackedBytes, maxFiles: 2 }),
        (error: unknown) => error instanceof BuildError && error.kind === 'INVALID_ARCHIVE' && /more than 2 files and folders \(GANTRY_PACKAGE_MAX_FILES\)/.test(error.message),
      );
      assert.equal(fs.existsSync(out), false, 'the partly unpacked package is removed');
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('stops at GANTRY_PACKAGE_MAX_UNPACKED_BYTES before writing the entry past it', async () => {
    fs.writeFileSync(path.join(dir, 'data', 'weights.bin'), Buffer.alloc(3 * 1024 * 1024));
    const { file } = await packModelDirectory(dir);
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-')), 'package');
    try {
      await assert.rejects(
        unpackArchive(file, out, { maxUnpackedBytes: 2 * 1024 * 1024, maxFiles: 100 }),
        (error: unknown) => error instanceof BuildError && /unpacks to more than 2 MiB \(GANTRY_PACKAGE_MAX_UNPACKED_BYTES\), at data\/weights.bin/.test(error.message),
      );
      assert.equal(fs.existsSync(out), false, 'the partly unpacked package is removed');
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  it('refuses absolute paths and paths with ..', async () => {
    for (const name of ['/tmp/gantry-escape.txt', '../escape.txt']) {
      const header = new tar.Header({ path: name, type: 'File', size: 1, mode: 0o644, mtime: new Date(0) });
      header.encode();
      const body = Buffer.concat([header.block!, Buffer.from('x'), Buffer.alloc(511), Buffer.alloc(1024)]);
      const archive = path.join(dir, 'escape.tar.gz');
      fs.writeFileSync(archive, zlib.gzipSync(body));
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-unpack-'));
      try {
        await assert.rejects(unpackArchive(archive, out, DEFAULT_PACKAGE_LIMITS), (error: unknown) => error instanceof BuildError && /outside the package/.test(error.message));
        assert.equal(fs.existsSync('/tmp/gantry-escape.txt'), false);
        assert.equal(fs.existsSync(path.join(out, '..', 'escape.txt')), false);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
  });
});
