import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where each kind of Gantry state lives under GANTRY_HOME. */
export interface HomePaths {
  root: string;
  database: string;
  temporalDatabase: string;
  adminKeyFile: string;
  /** The AES-256 key secret values are encrypted with (mode 0600; back it up). */
  secretsKeyFile: string;
  /** The generated secret async webhooks are signed with when GANTRY_WEBHOOK_SECRET is unset. */
  webhookSecretFile: string;
  archives: string;
  builds: string;
  venvs: string;
  logs: string;
  tmp: string;
}

/** Lays out the directories and files Gantry keeps under its home directory. */
export function homePaths(home: string): HomePaths {
  return {
    root: home,
    database: path.join(home, 'gantry.db'),
    temporalDatabase: path.join(home, 'temporal.db'),
    adminKeyFile: path.join(home, 'admin-api-key'),
    secretsKeyFile: path.join(home, 'secrets.key'),
    webhookSecretFile: path.join(home, 'webhook-secret'),
    archives: path.join(home, 'archives'),
    builds: path.join(home, 'builds'),
    venvs: path.join(home, 'venvs'),
    logs: path.join(home, 'logs'),
    tmp: path.join(home, 'tmp'),
  };
}

/**
 * Creates GANTRY_HOME readable by its owner only (mode 0700) and tightens an existing one, and
 * its key files (admin key, secrets key, webhook secret) to 0600. Returns what it tightened, for
 * the log; nothing when all was already private.
 */
export function ensurePrivateHome(paths: HomePaths): string[] {
  const tightened: string[] = [];
  fs.mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  const tighten = (file: string, mode: number): void => {
    let current: number;
    try {
      current = fs.statSync(file).mode & 0o777;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if ((current & ~mode) === 0) return;
    fs.chmodSync(file, mode);
    tightened.push(`${file} (${current.toString(8).padStart(4, '0')} -> ${mode.toString(8).padStart(4, '0')})`);
  };
  tighten(paths.root, 0o700);
  for (const file of [paths.adminKeyFile, paths.secretsKeyFile, paths.webhookSecretFile]) tighten(file, 0o600);
  return tightened;
}

/** The uploaded archive of one deployment (of a development revision, when given). */
export function archivePath(paths: HomePaths, deploymentId: string, revision = 0): string {
  return path.join(paths.archives, revision === 0 ? `${deploymentId}.tar.gz` : `${deploymentId}.r${revision}.tar.gz`);
}

/** The unpacked, built model package of one deployment (at a development revision, when given). */
export function buildDir(paths: HomePaths, deploymentId: string, revision = 0): string {
  return path.join(paths.builds, revision === 0 ? deploymentId : `${deploymentId}.r${revision}`);
}

/** The deployment a build directory belongs to (`<id>` or `<id>.r<revision>`). */
export function deploymentOfBuildDir(name: string): string {
  return name.split('.r')[0]!;
}

/**
 * Creates `file` (mode 0600) holding `contents`, unless it exists: the contents go to a private
 * temporary file that is hard-linked into place, which fails if another process got there first
 * (its file is kept). An existing file is never replaced.
 */
export function createFileOnce(file: string, contents: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(temporary, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeSync(fd, typeof contents === 'string' ? Buffer.from(contents, 'utf8') : contents);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}
