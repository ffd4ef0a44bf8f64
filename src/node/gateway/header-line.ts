/**
 * One HTTP/1.1 header line, split and checked without a regular expression (it runs for every
 * header of every request and answer on the fast lane): a token, a colon, a value of visible
 * characters, spaces, tabs and obs-text, its surrounding blanks trimmed.
 */

/** The characters of an HTTP token (RFC 9110 §5.6.2), by code. */
const TOKEN = new Uint8Array(128);
for (const char of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[char.charCodeAt(0)] = 1;

/** A header line's name (as sent) and value, or undefined when the line is malformed. */
export function splitHeaderLine(line: string): [name: string, value: string] | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  for (let i = 0; i < colon; i++) if (TOKEN[line.charCodeAt(i)] !== 1) return undefined;
  let start = colon + 1;
  let end = line.length;
  while (start < end && isBlank(line.charCodeAt(start))) start++;
  while (end > start && isBlank(line.charCodeAt(end - 1))) end--;
  for (let i = start; i < end; i++) {
    const code = line.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code > 0xff) return undefined;
  }
  return [line.slice(0, colon), line.slice(start, end)];
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
