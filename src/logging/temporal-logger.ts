/**
 * The Temporal SDK's log lines in Gantry's format: a Temporal `Logger` that writes to pino, so
 * the worker's Runtime (its own lines, the workflow bundler's, workflow and activity context
 * loggers, and native core lines forwarded to it) prints JSON lines like every other process.
 */
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import type { Logger } from 'pino';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** A Temporal SDK logger that writes to `logger` (its metadata, such as workflowId or sdkComponent, as fields). */
export function temporalLogger(logger: Logger): TemporalLogger {
  const log = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    const pinoLevel = PINO_LEVEL[level] ?? 'info';
    if (meta && Object.keys(meta).length > 0) logger[pinoLevel]({ ...meta }, message);
    else logger[pinoLevel](message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}

/** The Temporal level matching a pino level name (native core lines are filtered at it before they are forwarded). */
export function temporalLevel(level: string): LogLevel {
  switch (level) {
    case 'trace':
      return 'TRACE';
    case 'debug':
      return 'DEBUG';
    case 'info':
      return 'INFO';
    case 'warn':
      return 'WARN';
    default:
      return 'ERROR';
  }
}
