import { strict as assert } from 'node:assert';
import { readAnswerHead, type BodyFraming } from '../../src/node/gateway/answer-framing';
import { readRequestHead } from '../../src/node/gateway/request-head';
import { referenceAnswerHead, referenceRequestHead } from './support/reference-heads';

/** A seeded generator (mulberry32): the same heads on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A head: a first line from `starts` (the first of them half the time), `usual` most of the time,
 * then random header lines of `names` and `values` (random case, blanks, separators and line
 * ends), then its blank line.
 */
function randomHead(next: () => number, starts: string[], usual: string, names: string[], values: string[]): string {
  const pick = <T>(list: T[]): T => list[Math.floor(next() * list.length)]!;
  const recase = (name: string): string => [...name].map((c) => (next() < 0.3 ? c.toUpperCase() : c)).join('');
  let text = next() < 0.5 ? starts[0]! : pick(starts);
  if (next() < 0.8) text += `\r\n${usual}`;
  const count = Math.floor(next() * 5);
  for (let i = 0; i < count; i++) {
    const lineEnd = next() < 0.04 ? pick(['\n', '\r', '\r\r\n']) : '\r\n';
    const separator = next() < 0.1 ? pick([':', ' : ', ':\t', ':  ']) : ': ';
    text += `${lineEnd}${recase(pick(names))}${separator}${pick(values)}${next() < 0.1 ? pick([' ', '\t', ' \t']) : ''}`;
  }
  return `${text}\r\n\r\n`;
}

function framingText(framing: BodyFraming): string {
  return framing.kind === 'length' ? `length ${framing.length}` : framing.kind;
}

describe('Fast lane: the head readers agree with their first, regular-expression versions', () => {
  it('on 20,000 random request heads: the same refusals, and the same fields for those taken', () => {
    const next = random(11);
    const starts = [
      'POST /models/m/production/predict HTTP/1.1',
      'POST /x?y=1&z=%41 HTTP/1.1',
      'POST / HTTP/1.1',
      'PUT /x HTTP/1.1',
      'post /x HTTP/1.1',
      'POST /x HTTP/1.0',
      'POST /x HTTP/1.1 ',
      'POST  /x HTTP/1.1',
      'POST /./a HTTP/1.1',
      'POST /a/. HTTP/1.1',
      'POST /a.b/c. HTTP/1.1',
      'POST /a\\b HTTP/1.1',
      'POST /a#f HTTP/1.1',
      'POST /a\x01 HTTP/1.1',
      'POST /\xe9 HTTP/1.1',
      'POST x HTTP/1.1',
    ];
    const names = [
      'host',
      'content-length',
      'authorization',
      'connection',
      'x-request-id',
      'transfer-encoding',
      'expect',
      'upgrade',
      'keep-alive',
      'te',
      'trailer',
      'proxy-authorization',
      'content-type',
      'x-custom',
      'hosts',
      'bad name',
      'x(y)',
      '',
    ];
    const values = [
      'v',
      'g:1',
      '12',
      '0',
      '+2',
      '0x1',
      '1234567890123456',
      '',
      'keep-alive',
      'close',
      'keep-alive, close',
      'Close',
      'upgrade',
      'a\x00b',
      'a\x7fb',
      'chunked',
      '\xe9t\xe9',
      'Api-Key k',
      'a b\tc',
    ];
    let taken = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = randomHead(next, starts, 'Host: g', names, values);
      const reading = readRequestHead(Buffer.from(`${text}{}`, 'latin1'), 16 * 1024);
      const expected = referenceRequestHead(text);
      if (!expected) {
        assert.equal(reading.kind, 'unsupported', JSON.stringify(text));
        continue;
      }
      assert.equal(reading.kind, 'head', JSON.stringify(text));
      if (reading.kind !== 'head') continue;
      taken++;
      const { target, host, authorization, requestId, contentLength, close, forwarded } = reading.head;
      assert.deepEqual({ target, host, authorization, requestId, contentLength, close, forwarded }, expected, JSON.stringify(text));
      assert.equal(reading.head.length, Buffer.byteLength(text, 'latin1'));
    }
    // Both kinds are well represented (a generator that only made refusals would prove nothing).
    assert.ok(taken > 2_000 && taken < 18_000, `${taken} heads taken`);
  });

  it('on 20,000 random answer heads: the same malformed ones, and the same status, headers passed on, framing and keep-alive', () => {
    const next = random(7);
    const starts = [
      'HTTP/1.1 200 OK',
      'HTTP/1.1 200',
      'HTTP/1.0 200 OK',
      'HTTP/1.1 204 No Content',
      'HTTP/1.1 304',
      'HTTP/1.1 503 Busy now',
      'HTTP/1.1 600 X',
      'HTTP/1.1 199 X',
      'HTTP/1.2 200 OK',
      'HTTP/1.1 20 OK',
      'HTTP/1.1 200OK',
      'HTTP/1.1 2000 OK',
      'HTTP/1.1 200 O\rK',
      'http/1.1 200 OK',
      'HTTP/1.1 200 \xe9',
    ];
    const names = [
      'content-length',
      'transfer-encoding',
      'connection',
      'date',
      'x-request-id',
      'x-gantry-deployment-id',
      'keep-alive',
      'content-type',
      'server',
      'x-custom',
      'bad name',
      '',
    ];
    const values = ['3', '0', '12', 'x', '', 'chunked', 'Chunked', 'gzip, chunked', 'close', 'keep-alive', 'Keep-Alive, Upgrade', 'closed', 'application/json', 'a\x00b', '\xe9'];
    let read = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = randomHead(next, starts, 'Content-Length: 3', names, values);
      const reading = readAnswerHead(Buffer.from(text, 'latin1'), 64 * 1024);
      const expected = referenceAnswerHead(text);
      if (!expected) {
        assert.equal(reading.kind, 'malformed', JSON.stringify(text));
        continue;
      }
      assert.equal(reading.kind, 'head', JSON.stringify(text));
      if (reading.kind !== 'head') continue;
      read++;
      const { status, keepAlive, headerLines, framing } = reading.head;
      assert.deepEqual({ status, keepAlive, headerLines, framing: framingText(framing) }, expected, JSON.stringify(text));
    }
    assert.ok(read > 2_000 && read < 18_000, `${read} heads read`);
  });
});
