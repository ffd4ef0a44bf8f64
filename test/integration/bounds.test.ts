/**
 * Package and upload bounds on the real stack (docs/builds-and-failures.md#package-limits): a
 * 20 MB gzip bomb that unpacks to 20 GiB and a package of a million empty files each fail
 * BUILD_FAILED naming the setting they passed, with disk use under GANTRY_HOME never more than
 * the limit above where it started, and the partly unpacked package removed; pushes past
 * GANTRY_MAX_CONCURRENT_UPLOADS are answered 503 with Retry-After; an aborted upload leaves no
 * file and no open handle; an existing GANTRY_HOME is made 0700 at start, and the log says so.
 * Both archives are generated while they are sent, never written by the test.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import { eventually } from '../helpers/ports';
import { TestStack } from '../helpers/stack';

const MiB = 1024 * 1024;
const MAX_UNPACKED_BYTES = 64 * MiB;
const MAX_FILES = 50_000; // the default
const BOUNDARY = 'gantry-bounds-test-boundary';

interface Deployment {
  id: string;
  model_id: string;
  status: string;
  status_message: string | null;
}

/** A tar header block for a regular file. */
function fileHeader(name: string, size: number): Buffer {
  const header = new tar.Header({ path: name, type: 'File', size, mode: 0o644, mtime: new Date(0) });
  header.encode();
  return header.block!;
}

/**
 * A gzip bomb: `entries` files of `entryBytes` zeros each. Every 1 MiB of zeros is the same
 * gzip member (compressed once by zlib); a .tar.gz may hold many members, read one after another.
 */
async function* gzipBomb(entries: number, entryBytes: number): AsyncGenerator<Buffer> {
  const zerosMember = zlib.gzipSync(Buffer.alloc(MiB));
  for (let i = 0; i < entries; i++) {
    yield zlib.gzipSync(fileHeader(`model/weights-${String(i).padStart(5, '0')}.bin`, entryBytes));
    const members: Buffer[] = [];
    for (let sent = 0; sent < entryBytes; sent += MiB) members.push(zerosMember);
    yield Buffer.concat(members);
  }
  yield zlib.gzipSync(Buffer.alloc(1024)); // the end-of-archive blocks
}

/** A .tar.gz of `count` empty files, its headers made from one template and compressed as they are sent. */
async function* manyEmptyFiles(count: number): AsyncGenerator<Buffer> {
  const template = fileHeader('files/0000000', 0);
  let templateSum = 0;
  for (let i = 0; i < 512; i++) templateSum += i >= 148 && i < 156 ? 0x20 : template[i]!;
  const zeroDigitsSum = 7 * 0x30;
  const gzip = zlib.createGzip();
  const out: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => out.push(chunk));
  const batch = 1000;
  for (let first = 0; first < count; first += batch) {
    const block = Buffer.allocUnsafe(512 * batch);
    for (let k = 0; k < batch; k++) {
      const offset = k * 512;
      template.copy(block, offset);
      const digits = String(first + k).padStart(7, '0');
      let sum = templateSum - zeroDigitsSum;
      for (let d = 0; d < 7; d++) {
        block[offset + 6 + d] = digits.charCodeAt(d);
        sum += digits.charCodeAt(d);
      }
      block.write(`${sum.toString(8).padStart(6, '0')}\0 `, offset + 148, 'latin1');
    }
    await new Promise<void>((resolve) => gzip.write(block, () => resolve()));
    if (out.length > 0) yield Buffer.concat(out.splice(0));
  }
  await new Promise<void>((resolve) => gzip.end(Buffer.alloc(1024), () => resolve()));
  await new Promise<void>((resolve) => (gzip.readableEnded ? resolve() : gzip.once('end', () => resolve())));
  if (out.length > 0) yield Buffer.concat(out.splice(0));
}

/** The multipart text before the archive's bytes. */
function multipartHead(options: unknown): string {
  return (
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="options"\r\n\r\n${JSON.stringify(options)}\r\n` +
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="archive"; filename="package.tar.gz"\r\ncontent-type: application/gzip\r\n\r\n`
  );
}

/** Opens a push request (multipart, chunked) and sends its head; the caller sends the archive. */
function openPush(stack: TestStack, options: unknown): { request: http.ClientRequest; answer: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> } {
  const request = http.request(`${stack.apiUrl}/v1/deployments`, {
    method: 'POST',
    headers: { authorization: `Api-Key ${stack.apiKey}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
  });
  const answer = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }>((resolve, reject) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: text ? JSON.parse(text) : undefined }));
    });
    request.on('error', reject);
  });
  request.write(multipartHead(options));
  return { request, answer };
}

/** Pushes an archive generated by `archive`, sending each chunk as it comes; returns the answer and the archive's size. */
async function pushStreamed(stack: TestStack, options: unknown, archive: AsyncGenerator<Buffer>): Promise<{ status: number; body: any; archiveBytes: number }> {
  const { request, answer } = openPush(stack, options);
  let archiveBytes = 0;
  for await (const chunk of archive) {
    archiveBytes += chunk.length;
    if (!request.write(chunk)) await new Promise((resolve) => request.once('drain', resolve));
  }
  request.end(`\r\n--${BOUNDARY}--\r\n`);
  const { status, body } = await answer;
  return { status, body, archiveBytes };
}

/** Disk use under `dir` in bytes (du: blocks really used). */
function diskUse(dir: string): number {
  return Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0]) * 1024;
}

/** Samples disk use under `dir` until stopped; returns the highest seen. */
function watchDiskUse(dir: string): { stop: () => Promise<number> } {
  let peak = diskUse(dir);
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        peak = Math.max(peak, diskUse(dir));
      } catch {
        // a file vanished while du walked the tree: the next sample counts
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return Math.max(peak, diskUse(dir));
    },
  };
}

/** Waits for the deployment to fail its build, and returns it. */
async function buildFailure(stack: TestStack, deployment: Deployment): Promise<Deployment> {
  return eventually(
    `deployment ${deployment.id} to be BUILD_FAILED`,
    async () => {
      const { body } = await stack.api('GET', `/v1/models/${deployment.model_id}/deployments/${deployment.id}`);
      return body.status === 'BUILD_FAILED' ? (body as Deployment) : undefined;
    },
    180_000,
    250,
  );
}

/** The files the API process has open under `dir`. */
function openFilesUnder(pid: number, dir: string): string[] {
  const open: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith(dir)) open.push(target);
    } catch {
      // closed while we looked
    }
  }
  return open;
}

describe('bounds: package limits, concurrent and aborted uploads, a private home (real stack)', function () {
  this.timeout(600_000);
  let stack: TestStack;

  before(async () => {
    stack = await TestStack.create({ GANTRY_PACKAGE_MAX_UNPACKED_BYTES: String(MAX_UNPACKED_BYTES), GANTRY_MAX_CONCURRENT_UPLOADS: '1' });
    // A home made by someone else's umask: readable by everyone.
    fs.chmodSync(stack.home, 0o755);
    fs.writeFileSync(path.join(stack.home, 'webhook-secret'), 'a-webhook-secret-of-some-length', { mode: 0o644 });
    fs.chmodSync(path.join(stack.home, 'webhook-secret'), 0o644);
    await stack.start();
  });

  after(async () => {
    await stack?.destroy();
  });

  it('makes an existing GANTRY_HOME and its key files private at start, and says so', () => {
    assert.equal(fs.statSync(stack.home).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(stack.home, 'webhook-secret')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(stack.home, 'admin-api-key')).mode & 0o777, 0o600);
    assert.ok(stack.logged(/^GANTRY_HOME was readable by other users; made private: .*\(0755 -> 0700\).*webhook-secret \(0644 -> 0600\)/, 'gantry'), stack.log);
  });

  it('fails a 20 MB archive that unpacks to 20 GiB BUILD_FAILED, having written no more than the limit', async () => {
    const before = diskUse(stack.home);
    const watch = watchDiskUse(stack.home);
    const started = Date.now();
    // 1,280 files of 16 MiB of zeros: 20 GiB unpacked.
    const pushed = await pushStreamed(stack, { model_name: 'bomb' }, gzipBomb(1280, 16 * MiB));
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    assert.ok(pushed.archiveBytes < 24 * MiB, `the archive is ${pushed.archiveBytes} bytes`);
    const failed = await buildFailure(stack, pushed.body as Deployment);
    const peak = await watch.stop();
    const seconds = (Date.now() - started) / 1000;
    assert.match(
      failed.status_message ?? '',
      /the package unpacks to more than 64 MiB \(GANTRY_PACKAGE_MAX_UNPACKED_BYTES\), at model\/weights-00004\.bin; unpacking stopped and was removed/,
    );
    // The archive is kept (it is the deployment's record); beyond it, at most the limit was written.
    const rise = peak - before;
    assert.ok(rise <= MAX_UNPACKED_BYTES + pushed.archiveBytes + 2 * MiB, `disk use under GANTRY_HOME rose by ${rise} bytes at its peak`);
    assert.equal(fs.existsSync(path.join(stack.home, 'builds', failed.id)), false, 'the partly unpacked package is removed');
    const logs = await stack.api('GET', `/v1/models/${failed.model_id}/deployments/${failed.id}/logs?tail=20`);
    const lines = (logs.body.entries as { message: string }[]).map((entry) => entry.message);
    assert.ok(
      lines.some((line) => /^build failed: the package unpacks to more than 64 MiB \(GANTRY_PACKAGE_MAX_UNPACKED_BYTES\)/.test(line)),
      lines.join('\n'),
    );
    process.stdout.write(`      (${pushed.archiveBytes} byte archive; BUILD_FAILED ${seconds.toFixed(1)} s after the push began; peak rise ${rise} bytes)\n`);
  });

  it('fails a package of a million empty files BUILD_FAILED at GANTRY_PACKAGE_MAX_FILES, and removes what it unpacked', async () => {
    const started = Date.now();
    const pushed = await pushStreamed(stack, { model_name: 'million-files' }, manyEmptyFiles(1_000_000));
    assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
    const failed = await buildFailure(stack, pushed.body as Deployment);
    const seconds = (Date.now() - started) / 1000;
    assert.match(failed.status_message ?? '', /the package holds more than 50,000 files and folders \(GANTRY_PACKAGE_MAX_FILES\); unpacking stopped and was removed/);
    assert.equal(fs.existsSync(path.join(stack.home, 'builds', failed.id)), false, 'the partly unpacked package is removed');
    assert.equal(MAX_FILES, 50_000);
    process.stdout.write(`      (${pushed.archiveBytes} byte archive; BUILD_FAILED ${seconds.toFixed(1)} s after the push began)\n`);
  });

  it('answers a push past GANTRY_MAX_CONCURRENT_UPLOADS 503 with Retry-After, and cleans an aborted upload at once', async () => {
    const scratch = path.join(stack.home, 'tmp');
    const apiPid = stack.childPid('api');
    // One upload under way: its head and the first bytes of its archive, and no end.
    const first = openPush(stack, { model_name: 'slow' });
    first.answer.catch(() => undefined);
    first.request.write(zlib.gzipSync(Buffer.alloc(64 * 1024)));
    const scratchFile = await eventually('the upload to reach its scratch file', async () => {
      const files = fs.existsSync(scratch) ? fs.readdirSync(scratch) : [];
      return files.length === 1 && openFilesUnder(apiPid, scratch).length === 1 ? files[0] : undefined;
    });
    assert.match(scratchFile, /^upload-[0-9a-f]{16}\.tar\.gz$/);

    const second = await pushStreamed(stack, { model_name: 'second' }, (async function* () {})());
    assert.equal(second.status, 503);
    assert.equal(second.body.error.code, 'too_many_uploads');
    assert.match(second.body.error.message, /GANTRY_MAX_CONCURRENT_UPLOADS/);

    const refused = openPush(stack, { model_name: 'third' });
    refused.request.end(`\r\n--${BOUNDARY}--\r\n`);
    const answer = await refused.answer;
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['retry-after'], '5');

    // The client goes away mid-body: the file and its handle are gone right after.
    first.request.destroy();
    await eventually(
      'the aborted upload to be cleaned',
      async () => (fs.readdirSync(scratch).length === 0 && openFilesUnder(apiPid, scratch).length === 0 ? true : undefined),
      2_000,
      20,
    );

    // The slot is free again: the next push is read (and refused for what it is, not for the cap).
    const next = await pushStreamed(
      stack,
      { model_name: 'next' },
      (async function* () {
        yield Buffer.from('not a gzip');
      })(),
    );
    assert.equal(next.status, 400, JSON.stringify(next.body));
    assert.match(next.body.error.message, /gzip-compressed tar/);
    assert.deepEqual(fs.readdirSync(scratch), []);
  });
});
