/**
 * Log lines written on the gateway's hot path (the access log: one line per request), in the
 * exact format of `createLogger`'s loggers (`level` as a name, `time` in ISO 8601, the logger's
 * bindings, the fields, `msg`) but without pino's generic serializer, which walks every field of
 * every line and formats the time from scratch: built from a fields text the caller already has
 * in JSON, with the time's text made once a second.
 */
import pino from 'pino';
import type { Logger } from './logger';

/** The levels hot-path lines are written at. */
export type HotPathLevel = 'debug' | 'info';

/** What pino writes its lines to. */
interface LineStream {
  write(line: string): void;
}

/** Writes hot-path lines to a logger's own destination, honouring its level. */
export class HotPathLines {
  private readonly stream: LineStream;
  /** The logger's bindings as JSON members with a leading comma (`,"process":"node"`), or empty. */
  private readonly bindings: string;

  constructor(private readonly logger: Logger) {
    this.stream = (logger as unknown as Record<symbol, LineStream>)[pino.symbols.streamSym]!;
    const bindings = JSON.stringify(logger.bindings());
    this.bindings = bindings === '{}' ? '' : `,${bindings.slice(1, -1)}`;
  }

  /** Whether a line at `level` is written at all. */
  enabled(level: HotPathLevel): boolean {
    return this.logger.isLevelEnabled(level);
  }

  /** Writes one line: `fields` are JSON members without braces (`"a":1,"b":"x"`), `msgJson` the message as a JSON string (quotes included). */
  write(level: HotPathLevel, fields: string, msgJson: string): void {
    this.stream.write(`{"level":"${level}","time":"${isoTimeNow()}"${this.bindings},${fields},"msg":${msgJson}}\n`);
  }
}

/**
 * A string as JSON, as `JSON.stringify` writes it: quoted as it is when nothing in it needs an
 * escape (the usual case: ids, paths), else by `JSON.stringify` (entering which costs more than
 * checking a short string here).
 */
export function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/**
 * `jsonString(`${first} ${second} ${last}`)` made from `jsonString(first)` and
 * `jsonString(second)`, already made for the line's fields, instead of quoting the whole again:
 * an escape never spans a space, and `last` (a number) needs none.
 */
export function spacedJsonString(firstJson: string, secondJson: string, last: number): string {
  return `${firstJson.slice(0, -1)} ${secondJson.slice(1, -1)} ${last}"`;
}

/**
 * A duration in ms rounded to a tenth, as `String(Math.round(ms * 10) / 10)` writes it, with
 * whole-number arithmetic only (a fraction's text is made by a call into V8's runtime).
 */
export function tenthsText(ms: number): string {
  const tenths = Math.round(ms * 10);
  const whole = Math.trunc(tenths / 10);
  const tenth = tenths - whole * 10;
  return tenth === 0 ? `${whole}` : tenths < 0 ? `-${-whole}.${-tenth}` : `${whole}.${tenth}`;
}

/** The current second's ISO 8601 text up to its fraction (`2026-12-03T08:12:15.`), made once a second. */
let isoSecondText = '';
let isoSecond = Number.NaN;

/** The time now as `Date.prototype.toISOString` writes it (what createLogger's lines carry). */
export function isoTimeNow(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoSecondText = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const millis = now - second * 1000;
  return `${isoSecondText}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}
