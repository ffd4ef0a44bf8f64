/**
 * Collection of Python environments nothing uses any more (docs/operations.md, "Disk"): an
 * environment is kept while a deployment that is not deleted, or a replica still running here,
 * uses it, and for a retention period after it was last seen in use (so a re-push of the same
 * requirements soon after a delete installs nothing); the scratch folders of builds that died
 * before finishing (`.<key>.<random>.partial`) are removed once no build can still be writing
 * them (older than the longest a build may run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { COMPLETE_MARKER, markEnvironmentUsed } from './python-environments';

/** How long unused environments and build scratch folders are kept. */
export interface EnvironmentRetention {
  /** An environment unused for this long is removed (GANTRY_VENV_RETENTION_SECONDS). */
  unusedForMs: number;
  /** A `.partial` scratch folder older than this is left over from a build that died (the build deadline, plus a margin). */
  partialAfterMs: number;
}

/** What one collection pass removed. */
export interface CollectionResult {
  /** Keys of the environments removed. */
  environments: string[];
  /** Names of the scratch folders removed. */
  partials: string[];
  /** Settles when the removed trees are gone from the disk (removal runs in the background). */
  removed: Promise<void>;
}

/** An environment's folder name: its 20-hex-digit key. */
const ENVIRONMENT_NAME = /^[0-9a-f]{20}$/;
/** A build's scratch folder: `.<key>.<8 hex digits>.partial`. */
const PARTIAL_NAME = /^\.[0-9a-f]{20}\.[0-9a-f]{8}\.partial$/;

/** The environment key of a replica's interpreter path (`<venvs>/<key>/bin/python`), or undefined when it is not inside `venvsDir`. */
export function environmentKeyOfPython(venvsDir: string, python: string): string | undefined {
  const dir = path.dirname(path.dirname(python));
  return path.dirname(dir) === path.resolve(venvsDir) && ENVIRONMENT_NAME.test(path.basename(dir)) ? path.basename(dir) : undefined;
}

/**
 * One pass: marks every environment in `inUse` as used now, then removes the complete
 * environments last used longer than the retention ago and the scratch folders older than
 * `partialAfterMs`. Folders of any other name are left alone. An environment is first renamed
 * to a scratch name (atomic), so a half-removed one is never taken for a complete one, and a build
 * that reuses it meanwhile either marked it first (it is put back) or finds it gone (and builds).
 */
export function collectPythonEnvironments(venvsDir: string, inUse: ReadonlySet<string>, retention: EnvironmentRetention, now = Date.now()): CollectionResult {
  const removals: Promise<void>[] = [];
  const result: CollectionResult = { environments: [], partials: [], removed: Promise.resolve() };
  let entries: string[];
  try {
    entries = fs.readdirSync(venvsDir);
  } catch {
    return result; // no environment built yet
  }
  for (const key of inUse) markEnvironmentUsed(venvsDir, key, new Date(now));
  for (const entry of entries) {
    const full = path.join(venvsDir, entry);
    if (ENVIRONMENT_NAME.test(entry) && !inUse.has(entry)) {
      const lastUsed = modifiedAt(path.join(full, COMPLETE_MARKER));
      if (lastUsed === undefined || now - lastUsed < retention.unusedForMs) continue;
      const doomed = path.join(venvsDir, `.${entry}.${'0'.repeat(8)}.partial`);
      try {
        fs.renameSync(full, doomed);
      } catch {
        continue; // gone already, or a leftover of the same name is in the way: the next pass
      }
      // A build that reused it between the look and the rename marked it used: put it back. One
      // that looks after the rename finds no environment and builds its own.
      const marked = modifiedAt(path.join(doomed, COMPLETE_MARKER));
      if (marked !== undefined && marked > lastUsed && putBack(doomed, full)) continue;
      removals.push(removeInBackground(doomed));
      result.environments.push(entry);
    } else if (PARTIAL_NAME.test(entry)) {
      const created = modifiedAt(full);
      if (created === undefined || now - created < retention.partialAfterMs) continue;
      // Still a sandbox uid's (its build died before the tree was taken back): a process of that
      // uid may still run and could swap a directory for a link under root's removal. Left alone.
      if (ownedByAnotherUser(full)) continue;
      removals.push(removeInBackground(full));
      result.partials.push(entry);
    }
  }
  result.removed = Promise.all(removals).then(() => undefined);
  return result;
}

/** Renames a folder back; false when another has taken its place meanwhile (a build made a new one), so this one can go. */
function putBack(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch {
    return false;
  }
}

/** Removes a tree without blocking the node's thread (an environment can hold tens of thousands of files). */
function removeInBackground(dir: string): Promise<void> {
  return fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined); // what is left is a scratch folder: the next pass
}

/** Whether a folder belongs to another user than this process's (a sandbox uid's, when Gantry runs as root). */
function ownedByAnotherUser(dir: string): boolean {
  try {
    return fs.lstatSync(dir).uid !== process.getuid?.();
  } catch {
    return true;
  }
}

function modifiedAt(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}
