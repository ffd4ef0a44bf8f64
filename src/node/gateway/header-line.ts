/**
 * HTTP/1.1 header lines read in place, character by character, in a head decoded once (latin1),
 * for the fast lane's two head parsers (they run for every header of every request and answer on
 * the fast lane): no string is made for a line until its name or value is wanted, and a name is
 * recognised by comparing its characters.
 * A line is a token, a colon, and a value of visible characters, spaces, tabs and obs-text,
 * its surrounding blanks trimmed.
 */

/** The blank line that ends a head. */
export const HEAD_END = Buffer.from('\r\n\r\n');

const CR = 13;
const LF = 10;

/** The characters of an HTTP token (RFC 9110 §5.6.2), by code. */
const TOKEN = new Uint8Array(256);
for (const char of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[char.charCodeAt(0)] = 1;

/** Where the parts of the header line last read lie in its buffer (offsets). */
export interface HeaderLine {
  nameStart: number;
  nameEnd: number;
  valueStart: number;
  valueEnd: number;
  /** Where the next line starts (past this line's CRLF), or past `end` for the last one. */
  next: number;
}

/**
 * Reads the header line starting at `start` in a head whose blank line starts at `end` (so the
 * last line ends there) into `line`; false when it is malformed (no token before its colon, a
 * control character, a CR without its LF).
 */
export function readHeaderLine(text: string, start: number, end: number, line: HeaderLine): boolean {
  let i = start;
  while (i < end && TOKEN[text.charCodeAt(i)] === 1) i++;
  if (i === start || i >= end || text.charCodeAt(i) !== 0x3a) return false;
  line.nameStart = start;
  line.nameEnd = i;
  let lineEnd = i + 1;
  while (lineEnd < end) {
    const byte = text.charCodeAt(lineEnd);
    if (byte === CR) break;
    if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) return false;
    lineEnd++;
  }
  if (lineEnd < end && text.charCodeAt(lineEnd + 1) !== LF) return false;
  let valueStart = i + 1;
  let valueEnd = lineEnd;
  while (valueStart < valueEnd && isBlank(text.charCodeAt(valueStart))) valueStart++;
  while (valueEnd > valueStart && isBlank(text.charCodeAt(valueEnd - 1))) valueEnd--;
  line.valueStart = valueStart;
  line.valueEnd = valueEnd;
  line.next = lineEnd + 2;
  return true;
}

/** A new, empty line record to read lines into. */
export function headerLine(): HeaderLine {
  return { nameStart: 0, nameEnd: 0, valueStart: 0, valueEnd: 0, next: 0 };
}

/** Header names (lower case) by length, each with its number in the list given to `headerNames`. */
export type HeaderNames = ReadonlyArray<ReadonlyArray<readonly [name: string, id: number]>>;

/** The lookup table of `names` (lower-case tokens of letters, digits and `-`) for `nameIdOf`. */
export function headerNames(names: readonly string[]): HeaderNames {
  const byLength: [string, number][][] = [];
  names.forEach((name, id) => {
    byLength[name.length] ??= [];
    byLength[name.length]!.push([name, id]);
  });
  for (let length = 0; length < byLength.length; length++) byLength[length] ??= [];
  return byLength;
}

/**
 * The number of the line's name in `names`, compared without regard to case, or -1. (`byte | 0x20`
 * lowers a letter and leaves `-` and digits alone; the name's bytes are already known to be a token.)
 */
export function nameIdOf(text: string, line: HeaderLine, names: HeaderNames): number {
  const length = line.nameEnd - line.nameStart;
  const candidates = names[length];
  if (!candidates) return -1;
  outer: for (const [name, id] of candidates) {
    for (let i = 0; i < length; i++) if ((text.charCodeAt(line.nameStart + i) | 0x20) !== name.charCodeAt(i)) continue outer;
    return id;
  }
  return -1;
}

/** The line's value. */
export function headerValue(text: string, line: HeaderLine): string {
  return text.slice(line.valueStart, line.valueEnd);
}

/** The value as a decimal Content-Length (1 to 15 digits), or -1 when it is not one. */
export function decimalValue(text: string, line: HeaderLine): number {
  const length = line.valueEnd - line.valueStart;
  if (length < 1 || length > 15) return -1;
  let value = 0;
  for (let i = line.valueStart; i < line.valueEnd; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * The line as `name: value\r\n`, its name as sent or in lower case (a slice of the text, CRLF
 * included, when the line is written that way already; `text` must hold the line's CRLF).
 */
export function normalizedLine(text: string, line: HeaderLine, lowerCaseName = false): string {
  if (!lowerCaseName && line.valueStart === line.nameEnd + 2 && text.charCodeAt(line.nameEnd + 1) === 0x20 && line.next - 2 === line.valueEnd) {
    return text.slice(line.nameStart, line.next);
  }
  const name = text.slice(line.nameStart, line.nameEnd);
  return `${lowerCaseName ? name.toLowerCase() : name}: ${headerValue(text, line)}\r\n`;
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
