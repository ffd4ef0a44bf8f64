/**
 * The fast lane's head readers as they were first written (regular expressions, a split per
 * line, lower-cased names in sets): the reference the faster readers are checked against,
 * head by head, in test/unit/fast-lane-heads.test.ts. Only what decides acceptance and the
 * fields read is kept.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** A header line's name and trimmed value, or undefined when malformed. */
function splitHeaderLine(line: string): [string, string] | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return undefined;
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters refused are control characters
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return undefined;
  return [line.slice(0, colon), value];
}

/** What the first request head reader made of a request: undefined for `unsupported`, else its fields. */
export function referenceRequestHead(text: string): Record<string, unknown> | undefined {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const requestLine = /^POST (\/[\x21-\x7e]*) HTTP\/1\.1$/.exec(lines[0]!);
  if (!requestLine || /\/\.|\\|#/.test(requestLine[1]!)) return undefined;
  const head = {
    target: requestLine[1],
    host: undefined as string | undefined,
    authorization: undefined as string | undefined,
    requestId: undefined as string | undefined,
    contentLength: 0,
    close: false,
    forwarded: '',
  };
  let sawLength = false;
  for (const raw of lines.slice(1)) {
    const line = splitHeaderLine(raw);
    if (!line) return undefined;
    const name = line[0].toLowerCase();
    const value = line[1];
    if (['transfer-encoding', 'expect', 'upgrade'].includes(name)) return undefined;
    if (name === 'content-length') {
      if (sawLength || !/^\d{1,15}$/.test(value)) return undefined;
      sawLength = true;
      head.contentLength = Number(value);
    } else if (name === 'host') {
      if (head.host !== undefined) return undefined;
      head.host = value;
    } else if (name === 'authorization') {
      if (head.authorization !== undefined) return undefined;
      head.authorization = value;
    } else if (name === 'connection') {
      if (!/^(?:\s*(?:keep-alive|close)\s*)(?:,\s*(?:keep-alive|close)\s*)*$/i.test(value)) return undefined;
      if (/close/i.test(value)) head.close = true;
    } else if (name === 'x-request-id') head.requestId ??= value;
    else if (!HOP_BY_HOP.includes(name)) head.forwarded += `${name}: ${value}\r\n`;
  }
  return head.host === undefined ? undefined : head;
}

/** What the first answer head reader made of an answer: undefined for `malformed`, else its fields. */
export function referenceAnswerHead(text: string): Record<string, unknown> | undefined {
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end).split('\r\n');
  const statusLine = /^HTTP\/1\.([01]) ([2-5]\d\d)(?: .*)?$/.exec(lines[0]!);
  if (!statusLine) return undefined;
  const status = Number(statusLine[2]);
  let keepAlive = statusLine[1] === '1';
  let length: number | undefined;
  let chunked = false;
  let headerLines = '';
  for (const raw of lines.slice(1)) {
    const line = splitHeaderLine(raw);
    if (!line) return undefined;
    const name = line[0].toLowerCase();
    const value = line[1];
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) return undefined;
      length = Number(value);
    } else if (name === 'transfer-encoding') {
      if (!/^chunked$/i.test(value)) return undefined;
      chunked = true;
    } else if (name === 'connection') {
      if (/\bclose\b/i.test(value)) keepAlive = false;
      else if (/\bkeep-alive\b/i.test(value)) keepAlive = true;
    }
    if (![...HOP_BY_HOP, 'content-length', 'date', 'x-request-id', 'x-gantry-deployment-id'].includes(name)) headerLines += `${line[0]}: ${value}\r\n`;
  }
  if (chunked && length !== undefined) return undefined;
  let framing: string;
  if (status === 204 || status === 304) framing = 'none';
  else if (chunked) framing = 'chunked';
  else if (length !== undefined) framing = length === 0 ? 'none' : `length ${length}`;
  else {
    framing = 'until-close';
    keepAlive = false;
  }
  return { status, keepAlive, headerLines, framing };
}
