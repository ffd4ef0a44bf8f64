/**
 * Packs a model directory for a push: a .tar.gz of its files without `.git`, `__pycache__`,
 * `.venv` and whatever `.gantryignore` lists (gitignore syntax).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { parse as parseYaml } from 'yaml';
import * as tar from 'tar';

/** What is never sent, whatever .gantryignore says. */
export const ALWAYS_IGNORED = ['.git/', '__pycache__/', '.venv/', '*.pyc', '.DS_Store', '.gantryignore'];

/** The ignore rules of a model directory. */
export function ignoreRules(dir: string): Ignore {
  const rules = ignore().add(ALWAYS_IGNORED);
  const file = path.join(dir, '.gantryignore');
  if (fs.existsSync(file)) rules.add(fs.readFileSync(file, 'utf8'));
  return rules;
}

/** The files (relative, posix separators) a push of `dir` sends, sorted. */
export function packageFiles(dir: string): string[] {
  const rules = ignoreRules(dir);
  const files: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true })) {
      const child = relative ? `${relative}/${entry.name}` : entry.name;
      const stat = fs.statSync(path.join(dir, child)); // follows links: their targets are sent as files
      if (stat.isDirectory()) {
        if (!rules.ignores(`${child}/`)) walk(child);
      } else if (stat.isFile() && !rules.ignores(child)) {
        files.push(child);
      }
    }
  };
  walk('');
  return files.sort();
}

/** Writes the archive of `dir` to a temporary file; returns its path and what it holds. */
export async function packModelDirectory(dir: string): Promise<{ file: string; files: string[]; bytes: number }> {
  const files = packageFiles(dir);
  if (files.length === 0) throw new Error(`${dir} has no files to push`);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-push-')), 'package.tar.gz');
  await tar.c({ gzip: true, file, cwd: dir, portable: true, follow: true, noDirRecurse: true }, files);
  return { file, files, bytes: fs.statSync(file).size };
}

/** The model name: --model-name, else config.yaml's model_name, else the directory's name. */
export function modelNameFor(dir: string, explicit: string | undefined): string {
  if (explicit) return explicit;
  const configFile = path.join(dir, 'config.yaml');
  if (fs.existsSync(configFile)) {
    try {
      const config = parseYaml(fs.readFileSync(configFile, 'utf8')) as { model_name?: unknown } | null;
      if (typeof config?.model_name === 'string' && config.model_name.trim()) return config.model_name.trim();
    } catch {
      // the build reports an invalid config.yaml with its cause; the name falls back to the directory
    }
  }
  return path.basename(path.resolve(dir));
}
