/**
 * Reads a model package (docs/model-packages.md): either a config.yaml with a Model class, or a bare
 * predict.py. Parsing config.yaml here is the only place its user input is checked.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { describeIssues, modelConfigSchema, type ModelConfig } from '../shared/schemas';
import { BuildError } from './build-error';

/** How the model's code is laid out in the package. */
export type PackageLayout = 'class' | 'bare';

/** A model package that passed the static checks. */
export interface ModelPackage {
  layout: PackageLayout;
  config: ModelConfig;
  /** The Python file the model server imports, relative to the package root. */
  modelFile: string;
  /** Things worth telling the user that do not stop the build. */
  warnings: string[];
}

/** The file the builder writes for the model server: config.yaml as parsed, plus the layout. */
export const SERVER_CONFIG_FILE = 'gantry-config.json';

const KNOWN_KEYS = new Set(Object.keys(modelConfigSchema.shape));

/** Parses a config.yaml text into a model config; throws BuildError naming each bad field. */
export function parseModelConfig(text: string): { config: ModelConfig; warnings: string[] } {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new BuildError('INVALID_CONFIG', `config.yaml is not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new BuildError('INVALID_CONFIG', 'config.yaml must be a mapping of keys to values');
  }
  const parsed = modelConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = describeIssues(parsed.error).map((issue) => `${issue.field}: ${issue.message}`);
    throw new BuildError('INVALID_CONFIG', `config.yaml is invalid: ${fields.join('; ')}`);
  }
  const ignored = Object.keys(raw).filter((key) => !KNOWN_KEYS.has(key));
  const warnings = ignored.length > 0 ? [`config.yaml keys Gantry does not use were ignored: ${ignored.join(', ')}`] : [];
  if (parsed.data.resources) warnings.push('config.yaml resources are recorded but not enforced on this node');
  return { config: parsed.data, warnings };
}

/** Reads and checks the package unpacked at `dir`. */
export function readModelPackage(dir: string): ModelPackage {
  const configPath = path.join(dir, 'config.yaml');
  if (!fs.existsSync(configPath)) {
    if (fs.existsSync(path.join(dir, 'predict.py'))) {
      return { layout: 'bare', config: modelConfigSchema.parse({}), modelFile: 'predict.py', warnings: [] };
    }
    throw new BuildError('MISSING_MODEL_FILE', 'the package has neither a config.yaml nor a predict.py at its root');
  }
  const { config, warnings } = parseModelConfig(fs.readFileSync(configPath, 'utf8'));
  const modelFile = path.posix.join(config.model_module_dir, config.model_class_filename);
  const resolved = path.resolve(dir, modelFile);
  if (!resolved.startsWith(path.resolve(dir) + path.sep)) {
    throw new BuildError('INVALID_CONFIG', `config.yaml model_module_dir points outside the package: ${config.model_module_dir}`);
  }
  if (!fs.existsSync(resolved)) {
    throw new BuildError('MISSING_MODEL_FILE', `model file ${modelFile} not found in the package`);
  }
  return { layout: 'class', config, modelFile, warnings };
}

/** Writes the file the model server reads its settings from. */
export function writeServerConfig(dir: string, pkg: ModelPackage): void {
  fs.writeFileSync(path.join(dir, SERVER_CONFIG_FILE), JSON.stringify({ ...pkg.config, layout: pkg.layout }, null, 2));
}
