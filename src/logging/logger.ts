/**
 * Gantry's process logs (docs/operations.md#logs): every process (the supervisor, the API, the
 * node, the worker) writes one JSON object per line to standard output with pino, all with the
 * same keys: `time` (ISO 8601), `level` (a name), `process` and `msg`, plus context fields such
 * as `requestId`, `modelId`, `deploymentId` or `workflowId` where a line is about one.
 */
import pino, { type Logger } from 'pino';
import { z } from 'zod';

export type { Logger } from 'pino';

/** The levels GANTRY_LOG_LEVEL accepts, most verbose first (`silent` logs nothing). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** A level name from GANTRY_LOG_LEVEL. */
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The schema of GANTRY_LOG_LEVEL (info when unset). */
export const logLevelSchema = z.enum(LOG_LEVELS).default('info');

/** The schema of GANTRY_LOG_FORMAT: how `npm start` prints (pretty in a terminal, else JSON, when unset). */
export const logFormatSchema = z.enum(['json', 'pretty']).optional();

/** The keys every process log line has. */
export const LOG_LINE_KEYS = ['time', 'level', 'process', 'msg'] as const;

/** The level GANTRY_LOG_LEVEL asks for; info when it is unset or not a level (loadConfig reports that). */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevelName {
  const parsed = logLevelSchema.safeParse(env.GANTRY_LOG_LEVEL || undefined);
  return parsed.success ? parsed.data : 'info';
}

/** Creates a JSON line logger for the process called `processName`, writing to `destination` (stdout by default). */
export function createLogger(processName: string, options: { level?: LogLevelName; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? logLevelFromEnv(),
      base: { process: processName },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Errors logged as `{ err }` keep their type, message and stack.
      serializers: { err: pino.stdSerializers.err },
    },
    // Synchronous: a line logged just before process.exit() is not lost.
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

let current: Logger | undefined;

/**
 * Names this process's logger; its entry point calls this first. Returns the logger every
 * module of the process logs with (see processLogger).
 */
export function initProcessLogger(processName: string): Logger {
  current = createLogger(processName);
  return current;
}

/** The logger of this process (named `gantry` if its entry point did not name it). */
export function processLogger(): Logger {
  current ??= createLogger('gantry');
  return current;
}

/** A `(line) => void` that logs each line at `level` on `logger`, for parts that report in plain lines. */
export function lineLogger(logger: Logger, level: 'info' | 'warn' | 'error' = 'info'): (line: string) => void {
  return (line) => logger[level](line);
}

/** A logger that drops everything (for tests and for parts whose caller logs instead). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
