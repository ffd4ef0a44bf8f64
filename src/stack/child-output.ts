/**
 * What `npm start` prints: every line of every child (and its own) as one JSON log line with
 * the same keys (docs/operations.md#logs). A child's JSON line goes through unchanged; any other
 * line (the Temporal dev server's, a crash trace on stderr) is wrapped into one, with the child's
 * name as its `process` and the stream it came from as `stream`. In a terminal (or with GANTRY_LOG_FORMAT=pretty) each line is
 * pretty-printed instead: `[node]     12:00:01.234 INFO: gateway listening on …`, coloured.
 */
import { prettyFactory } from 'pino-pretty';
import { LOG_LEVELS, LOG_LINE_KEYS, type LogLevelName } from '../logging/logger';

/** How the stack's output is printed. */
export type OutputFormat = 'json' | 'pretty';

/** The format to print in: GANTRY_LOG_FORMAT when set, else pretty in a terminal and JSON otherwise. */
export function outputFormat(setting: OutputFormat | undefined, isTTY: boolean): OutputFormat {
  return setting ?? (isTTY ? 'pretty' : 'json');
}

/** A parsed JSON log line: an object with at least the keys every Gantry line has. */
type LogObject = Record<string, unknown> & { time: string; level: string; process: string; msg: string };

function parseLogLine(line: string): LogObject | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const object = value as Record<string, unknown>;
    return LOG_LINE_KEYS.every((key) => typeof object[key] === 'string') ? (object as LogObject) : undefined;
  } catch {
    return undefined;
  }
}

/** Formats the stack's output lines in one format. */
export class ChildOutput {
  private readonly pretty: ((object: unknown) => string) | undefined;

  private readonly minimum: number;

  constructor(
    readonly format: OutputFormat,
    private readonly colors: Record<string, number> = {},
    private readonly colorize = false,
    /** Lines the supervisor makes (its own, and wrapped plain text) below this level are dropped. */
    level: LogLevelName = 'info',
  ) {
    this.minimum = LOG_LEVELS.indexOf(level);
    this.pretty = format === 'pretty' ? prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'process,pid,hostname,stream', singleLine: true }) : undefined;
  }

  /** One line a child printed on `stream`, as the stack prints it (undefined: below the level). */
  childLine(processName: string, stream: 'stdout' | 'stderr', line: string): string | undefined {
    const parsed = parseLogLine(line);
    if (parsed && this.format === 'json') return line;
    // A wrapped line says which stream it came from: it is plain text the process printed, not one of its log lines.
    const object: LogObject = parsed ?? { time: new Date().toISOString(), level: stream === 'stderr' ? 'warn' : 'info', process: processName, msg: line, stream };
    // A child's own line passed its own level already.
    if (!parsed && LOG_LEVELS.indexOf(object.level as LogLevelName) < this.minimum) return undefined;
    return this.render(object);
  }

  /** A line the supervisor says itself (about `child` when given), as the stack prints it (undefined: below the level). */
  ownLine(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): string | undefined {
    if (LOG_LEVELS.indexOf(level) < this.minimum) return undefined;
    return this.render({ time: new Date().toISOString(), level, process: 'gantry', msg, ...fields });
  }

  /** A line of the supervisor's own JSON logger (already filtered by its level), as the stack prints it. */
  loggerLine(line: string): string {
    return this.format === 'json' ? line : this.render(parseLogLine(line) ?? { time: new Date().toISOString(), level: 'info', process: 'gantry', msg: line });
  }

  private render(object: LogObject): string {
    if (!this.pretty) return JSON.stringify(object);
    const label = `[${object.process}]`.padEnd(11);
    const color = this.colors[object.process];
    const prefix = this.colorize && color ? `\x1b[${color}m${label}\x1b[0m` : label;
    return `${prefix} ${this.pretty(object).replace(/\n$/, '')}`;
  }
}
