/**
 * Reads a push request: multipart/form-data with a file part `archive` (.tar.gz) and a field
 * `options` (JSON). The archive streams to a scratch file; past the size limit the answer is
 * 413 and the scratch file is removed; a client that goes away mid-body has its scratch file
 * closed and removed at once.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import busboy from 'busboy';
import type { Request } from 'express';
import { ApiError } from './errors';

/** A received push: the archive on disk and the raw options text. */
export interface PushUpload {
  archiveFile: string;
  optionsText: string | undefined;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** Receives the push; the caller owns (and must remove or move) `archiveFile`. */
export function receivePush(req: Request, scratchDir: string, maxArchiveBytes: number): Promise<PushUpload> {
  if (!req.is('multipart/form-data')) {
    return Promise.reject(new ApiError(400, 'bad_request', 'push takes multipart/form-data with an `archive` file and an `options` JSON field'));
  }
  fs.mkdirSync(scratchDir, { recursive: true });
  const archiveFile = path.join(scratchDir, `upload-${randomBytes(8).toString('hex')}.tar.gz`);
  return new Promise<PushUpload>((resolve, reject) => {
    let optionsText: string | undefined;
    let sawArchive = false;
    let failure: ApiError | undefined;
    let writing: Promise<void> = Promise.resolve();
    let out: fs.WriteStream | undefined;
    const fail = (error: ApiError): void => {
      failure ??= error;
    };
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: req.headers, limits: { files: 1, fields: 4, fileSize: maxArchiveBytes, fieldSize: 1024 * 1024 } });
    } catch (error) {
      reject(new ApiError(400, 'bad_request', `malformed multipart request: ${(error as Error).message}`));
      return;
    }
    parser.on('file', (name, stream) => {
      if (name !== 'archive' || sawArchive) {
        fail(new ApiError(400, 'bad_request', `unexpected file part ${name}: send one file part named archive`));
        stream.resume();
        return;
      }
      sawArchive = true;
      out = fs.createWriteStream(archiveFile);
      const file = out;
      stream.on('limit', () => fail(new ApiError(413, 'payload_too_large', `the archive is larger than ${Math.round(maxArchiveBytes / 1024 / 1024)} MiB`)));
      writing = new Promise((done, writeFailed) => {
        file.on('finish', () => done());
        file.on('error', writeFailed);
      });
      // Settled by the parser's close, or not at all when the client went away.
      writing.catch(() => undefined);
      stream.on('error', (error: Error) => fail(new ApiError(400, 'bad_request', `malformed multipart request: ${error.message}`)));
      stream.pipe(file);
    });
    parser.on('field', (name, value, info) => {
      if (name === 'options') optionsText = value;
      else fail(new ApiError(400, 'bad_request', `unexpected field ${name}: send archive and options`));
      if (info.valueTruncated) fail(new ApiError(413, 'payload_too_large', 'the options field is too large'));
    });
    parser.on('filesLimit', () => fail(new ApiError(400, 'bad_request', 'send exactly one archive')));
    parser.on('error', (error: Error) => {
      fs.rmSync(archiveFile, { force: true });
      reject(new ApiError(400, 'bad_request', `malformed multipart request: ${error.message}`));
    });
    parser.on('close', () => {
      writing.then(
        () => {
          if (!failure && !sawArchive) fail(new ApiError(400, 'bad_request', 'the push has no archive file part'));
          if (!failure && !hasGzipMagic(archiveFile)) fail(new ApiError(400, 'bad_request', 'the archive must be a gzip-compressed tar (.tar.gz)'));
          if (failure) {
            fs.rmSync(archiveFile, { force: true });
            reject(failure);
          } else resolve({ archiveFile, optionsText });
        },
        (error: Error) => {
          fs.rmSync(archiveFile, { force: true });
          reject(error);
        },
      );
    });
    // The client went away before its body ended: close the scratch file and remove it now.
    req.on('close', () => {
      if (req.complete) return;
      req.unpipe(parser);
      parser.removeAllListeners('close');
      parser.on('error', () => undefined);
      parser.destroy();
      out?.destroy();
      fs.rmSync(archiveFile, { force: true });
      out?.once('close', () => fs.rmSync(archiveFile, { force: true }));
      reject(new ApiError(400, 'bad_request', 'the upload was aborted before its body ended'));
    });
    req.pipe(parser);
  });
}

function hasGzipMagic(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(2);
    return fs.readSync(fd, head, 0, 2, 0) === 2 && head.equals(GZIP_MAGIC);
  } finally {
    fs.closeSync(fd);
  }
}
