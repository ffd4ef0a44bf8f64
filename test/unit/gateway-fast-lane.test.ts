import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../../src/auth/key-hash';
import { Gateway } from '../../src/node/gateway/gateway';
import { ChunkedBodyEnd, readAnswerHead } from '../../src/node/gateway/answer-framing';
import { readRequestHead } from '../../src/node/gateway/request-head';
import { DEFAULT_AUTOSCALING } from '../../src/shared/schemas';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { pushReplicas, pushRouting } from '../helpers/gateway-feed';
import { eventually } from '../helpers/ports';
import { StandInReplica } from '../helpers/stand-in-replica';
import { send } from './support/http';

const KEY = 'fast-lane-test-key-0123456789';
const AUTH = { authorization: `Api-Key ${KEY}` };

/** An answer read off a raw connection. */
interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** The answers (framed by Content-Length) in what a raw connection received so far. */
function rawAnswers(received: string): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let rest = received;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return answers;
    const head = rest.slice(0, end);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    if (rest.length < end + 4 + length) return answers;
    answers.push({ status: Number(head.slice(9, 12)), head: head.toLowerCase(), body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
}

/** A raw connection to the gateway: what it received, and whether the gateway closed it. */
class RawClient {
  received = '';
  closed = false;
  private readonly socket: net.Socket;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => (this.received += chunk));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  write(text: string): void {
    this.socket.write(text, 'latin1');
  }

  /** Waits until `count` answers have arrived. */
  async answers(count: number): Promise<RawAnswer[]> {
    return eventually(`${count} answers`, async () => {
      const answers = rawAnswers(this.received);
      return answers.length >= count ? answers : undefined;
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('Gateway: the fast lane', function () {
  this.timeout(30_000);
  let dir: string;
  let store: SqliteStore;
  let gateway: Gateway;
  let port = 0;
  let modelId = '';
  let deploymentId = '';
  let replica: StandInReplica;
  /** Connections the stand-in replica accepted. */
  let upstreamConnections = 0;
  const predictPath = (): string => `/models/${modelId}/production/predict`;
  const predictUrl = (): string => `http://127.0.0.1:${port}${predictPath()}`;
  const fastLaneCount = async (): Promise<number> => (await gateway.metrics.fastLane.get()).values[0]?.value ?? 0;
  const rawPredict = (body: string, extra = ''): string =>
    `POST ${predictPath()} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Api-Key ${KEY}\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gantry-fast-lane-'));
    store = new SqliteStore(path.join(dir, 'gantry.db'));
    await store.createApiKey({ name: 'test', prefix: 'fast', secretHash: hashApiKey(KEY), role: 'admin' });
    modelId = (await store.findOrCreateModel('fast')).id;
    const deployment = await store.createDeployment({ model_id: modelId, kind: 'published', labels: {}, autoscaling: DEFAULT_AUTOSCALING });
    await store.updateDeployment(deployment.id, { env_key: 'e', status: 'ACTIVE', desired_replicas: 1 });
    await store.adoptIfNoCurrentDeployment(modelId, 'production', deployment.id);
    deploymentId = deployment.id;
    gateway = new Gateway({ log: () => {} });
    await pushRouting(gateway, store);
    port = await gateway.listen(0, '127.0.0.1');
  });

  beforeEach(async () => {
    // Echoes what it got: the body, the request id and whether the key reached it.
    replica = new StandInReplica((res, req) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.once('end', () => {
        const body = JSON.stringify({ got: Buffer.concat(chunks).toString(), requestId: req.headers['x-request-id'], keyPassedOn: req.headers.authorization !== undefined });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-model': 'echo' }).end(body);
      });
    }, true);
    await replica.start('fast-a');
    upstreamConnections = 0;
    replica.server.on('connection', () => upstreamConnections++);
    pushReplicas(gateway, new Map([[deploymentId, [replica]]]));
  });

  afterEach(async () => {
    await replica.stop();
    pushReplicas(gateway, new Map());
  });

  after(async () => {
    await gateway.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers a prediction as the HTTP server does: status, body, request id and deployment headers, metrics', async () => {
    const fastBefore = await fastLaneCount();
    const fast = await send(predictUrl(), { body: '{"x":1}', headers: { ...AUTH, 'x-request-id': 'fast-1' } });
    assert.equal(await fastLaneCount(), fastBefore + 1, 'a small prediction takes the fast lane');
    // The same prediction with a chunked body goes through Node's HTTP server.
    const viaHttpServer = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const request = http.request(
        predictUrl(),
        { method: 'POST', agent: false, headers: { ...AUTH, 'content-type': 'application/json', 'x-request-id': 'http-1' } },
        (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        },
      );
      request.once('error', reject);
      request.write('{"x"');
      request.end(':1}');
    });
    assert.equal(await fastLaneCount(), fastBefore + 1, 'a chunked request body is left to the HTTP server');
    for (const [answer, requestId] of [
      [fast, 'fast-1'],
      [viaHttpServer, 'http-1'],
    ] as const) {
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(answer.body), { got: '{"x":1}', requestId, keyPassedOn: false });
      assert.equal(answer.headers['x-request-id'], requestId);
      assert.equal(answer.headers['x-gantry-deployment-id'], deploymentId);
      assert.equal(answer.headers['content-type'], 'application/json');
      assert.equal(answer.headers['x-model'], 'echo');
      assert.equal(answer.headers['content-length'], String(Buffer.byteLength(answer.body)));
    }
    const metrics = await gateway.metrics.requests.get();
    const served = metrics.values.filter((sample) => sample.labels.deployment_id === deploymentId && sample.labels.status_code === '200');
    assert.ok(served.reduce((sum, sample) => sum + sample.value, 0) >= 2);
    assert.equal(gateway.inFlight(deploymentId), 0);
  });

  it('serves pipelined predictions in order on one replica connection, then hands the connection to the HTTP server at the first request it does not take', async () => {
    const fastBefore = await fastLaneCount();
    const client = new RawClient(port);
    try {
      client.write(rawPredict('"one"') + rawPredict('"two"'));
      const first = await client.answers(2);
      assert.deepEqual(
        first.map((answer) => [answer.status, JSON.parse(answer.body).got]),
        [
          [200, '"one"'],
          [200, '"two"'],
        ],
      );
      assert.equal(upstreamConnections, 1, 'the replica connection is kept alive between requests');
      assert.equal(await fastLaneCount(), fastBefore + 2);
      // A chunked body (the HTTP server's), then a plain prediction: both answered, in order, on the same connection.
      const chunked = `POST ${predictPath()} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Api-Key ${KEY}\r\ntransfer-encoding: chunked\r\n\r\n7\r\n"three"\r\n0\r\n\r\n`;
      client.write(chunked + rawPredict('"four"'));
      const all = await client.answers(4);
      assert.deepEqual(
        all.slice(2).map((answer) => [answer.status, JSON.parse(answer.body).got]),
        [
          [200, '"three"'],
          [200, '"four"'],
        ],
      );
      assert.equal(await fastLaneCount(), fastBefore + 2, 'a handed-over connection stays with the HTTP server');
      assert.equal(client.closed, false);
    } finally {
      client.destroy();
    }
  });

  it('answers a long pipelined burst in order, reading ahead only a bounded part of it while it answers', async () => {
    const fastBefore = await fastLaneCount();
    const client = new RawClient(port);
    try {
      // 600 requests of about 4 KiB: 2.4 MiB, beyond what the fast lane reads ahead (256 KiB) and the kernel buffers.
      const padding = 'p'.repeat(4000);
      const count = 600;
      let burst = '';
      for (let i = 0; i < count; i++) burst += rawPredict(JSON.stringify(`${i}:${padding}`));
      client.write(burst);
      const answers = await client.answers(count);
      assert.deepEqual(
        answers.map((answer) => [answer.status, JSON.parse(JSON.parse(answer.body).got).split(':')[0]]),
        Array.from({ length: count }, (_, i) => [200, String(i)]),
      );
      assert.equal(await fastLaneCount(), fastBefore + count);
    } finally {
      client.destroy();
    }
  });

  it('leaves to the HTTP server what it does not take: a wrong key, another method, Expect, a body over 64 KiB', async () => {
    const fastBefore = await fastLaneCount();
    assert.equal((await send(predictUrl(), { body: '{}', headers: { authorization: 'Api-Key wrong' } })).status, 401);
    assert.equal((await send(predictUrl(), { method: 'PUT', body: '{}', headers: AUTH })).status, 405);
    const large = JSON.stringify('a'.repeat(70 * 1024));
    const answer = await send(predictUrl(), { body: large, headers: AUTH });
    assert.equal(answer.status, 200);
    assert.equal(JSON.parse(answer.body).got, large);
    const client = new RawClient(port);
    try {
      client.write(rawPredict('"expecting"', 'expect: 100-continue\r\n'));
      const [continued] = await client.answers(1);
      assert.equal(continued!.status, 100);
    } finally {
      client.destroy();
    }
    assert.equal(await fastLaneCount(), fastBefore);
  });

  it('passes a streamed answer on chunk by chunk, and keeps both connections for the next request', async () => {
    let release: () => void = () => {};
    const secondChunkMayGo = new Promise<void>((resolve) => (release = resolve));
    replica.behaviour = (res, req) => {
      req.resume();
      req.once('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        void secondChunkMayGo.then(() => res.end('second'));
      });
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const fastBefore = await fastLaneCount();
      const streamed = (): Promise<string> =>
        new Promise((resolve, reject) => {
          const request = http.request(predictUrl(), { method: 'POST', agent, headers: { ...AUTH, 'content-length': 2 } }, (response) => {
            assert.equal(response.headers['transfer-encoding'], 'chunked');
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => {
              body += chunk;
              if (body === 'first;') release();
            });
            response.once('end', () => resolve(body));
          });
          request.once('error', reject);
          request.end('{}');
        });
      // The second chunk is only written once the client has read the first.
      assert.equal(await streamed(), 'first;second');
      assert.equal(await streamed(), 'first;second');
      assert.equal(await fastLaneCount(), fastBefore + 2);
      assert.equal(upstreamConnections, 1);
    } finally {
      agent.destroy();
    }
  });

  it('answers 502 in JSON when a replica answers something that is not HTTP, and counts it', async () => {
    const garbage = net.createServer((socket) => {
      socket.once('data', () => socket.end('hello there\r\n\r\n'));
    });
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    try {
      pushReplicas(gateway, new Map());
      gateway.applyReplicas({ [deploymentId]: [{ id: 'garbage', port: (garbage.address() as net.AddressInfo).port }] });
      const answer = await send(predictUrl(), { body: '{}', headers: { ...AUTH, 'x-request-id': 'bad-1' } });
      assert.equal(answer.status, 502);
      assert.equal(answer.headers['x-request-id'], 'bad-1');
      assert.equal(JSON.parse(answer.body).error.code, 'bad_gateway');
      const failed = (await gateway.metrics.upstreamErrors.get()).values.find((sample) => sample.labels.deployment_id === deploymentId && sample.labels.kind === 'failed');
      assert.ok((failed?.value ?? 0) >= 1);
    } finally {
      garbage.close();
    }
  });

  it('closes the connection after the answer when the client asks', async () => {
    const client = new RawClient(port);
    try {
      client.write(rawPredict('"last"', 'connection: close\r\n'));
      const [answer] = await client.answers(1);
      assert.equal(answer!.status, 200);
      assert.match(answer!.head, /\r\nconnection: close/);
      await eventually('the gateway closed the connection', async () => (client.closed ? true : undefined));
    } finally {
      client.destroy();
    }
  });
});

describe('Fast lane: request heads', () => {
  const read = (text: string) => readRequestHead(Buffer.from(text, 'latin1'), 16 * 1024);
  const plain =
    'POST /models/m/production/predict?x=1 HTTP/1.1\r\nHost: g\r\nAuthorization: Api-Key k\r\nContent-Type: application/json\r\nX-Request-Id: r1\r\nX-Request-Id: r2\r\nKeep-Alive: 5\r\nContent-Length: 2\r\n\r\n{}';

  it('reads a plain prediction: path and query, key, request id, body length, the headers passed on', () => {
    const reading = read(plain);
    assert.equal(reading.kind, 'head');
    if (reading.kind !== 'head') return;
    const { head } = reading;
    assert.equal(head.pathname, '/models/m/production/predict');
    assert.equal(head.search, '?x=1');
    assert.equal(head.host, 'g');
    assert.equal(head.authorization, 'Api-Key k');
    assert.equal(head.requestId, 'r1');
    assert.equal(head.contentLength, 2);
    assert.equal(head.close, false);
    assert.equal(head.forwarded, 'content-type: application/json\r\n');
    assert.equal(head.length, plain.length - 2);
  });

  it('waits for the rest of a head, and leaves to Node what it does not take', () => {
    assert.equal(read(plain.slice(0, 40)).kind, 'incomplete');
    assert.equal(readRequestHead(Buffer.from(`POST / HTTP/1.1\r\nx: ${'a'.repeat(100)}`), 64).kind, 'unsupported');
    const unsupported = {
      'another method': plain.replace('POST', 'PUT'),
      'HTTP/1.0': plain.replace('HTTP/1.1', 'HTTP/1.0'),
      'a dot segment': plain.replace('/production/', '/./production/'),
      'a backslash': plain.replace('/production/', '/production\\'),
      'two Content-Length': plain.replace('Content-Length: 2', 'Content-Length: 2\r\nContent-Length: 2'),
      'a signed Content-Length': plain.replace('Content-Length: 2', 'Content-Length: +2'),
      'Transfer-Encoding': plain.replace('Content-Length: 2', 'Transfer-Encoding: chunked'),
      Expect: plain.replace('Keep-Alive: 5', 'Expect: 100-continue'),
      'Connection: upgrade': plain.replace('Keep-Alive: 5', 'Connection: upgrade'),
      'a folded header': plain.replace('Keep-Alive: 5', 'Keep-Alive: 5\r\n 6'),
      'a bare LF': plain.replace('Keep-Alive: 5\r\n', 'Keep-Alive: 5\nX: y\r\n'),
      'a space before the colon': plain.replace('Keep-Alive: 5', 'Keep-Alive : 5'),
      'a control character': plain.replace('Keep-Alive: 5', 'Keep-Alive: 5\x00'),
      'no Host': plain.replace('Host: g\r\n', ''),
      'two Hosts': plain.replace('Host: g', 'Host: g\r\nHost: h'),
    };
    for (const [what, text] of Object.entries(unsupported)) assert.equal(read(text).kind, 'unsupported', what);
    const closing = read(plain.replace('Keep-Alive: 5', 'Connection: keep-alive, close'));
    assert.ok(closing.kind === 'head' && closing.head.close);
  });
});

describe('Fast lane: answer framing', () => {
  it('reads a head: status, the headers passed on (not the per-connection ones), the framing', () => {
    const reading = readAnswerHead(
      Buffer.from('HTTP/1.1 201 Created\r\nContent-Type: a/b\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Request-Id: r\r\nContent-Length: 3\r\n\r\nabc'),
      1024,
    );
    assert.ok(reading.kind === 'head');
    assert.deepEqual(reading.head, { status: 201, headerLines: 'Content-Type: a/b\r\n', framing: { kind: 'length', length: 3 }, keepAlive: true, length: 126 });
    const closeDelimited = readAnswerHead(Buffer.from('HTTP/1.0 200 OK\r\n\r\n'), 1024);
    assert.ok(closeDelimited.kind === 'head' && closeDelimited.head.framing.kind === 'until-close' && !closeDelimited.head.keepAlive);
    for (const bad of [
      'hello\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Header\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    ])
      assert.equal(readAnswerHead(Buffer.from(bad), 1024).kind, 'malformed', bad);
    assert.equal(readAnswerHead(Buffer.from('HTTP/1.1 200 OK\r\n'), 1024).kind, 'incomplete');
  });

  it('finds the end of a chunked body however it is cut, extensions and trailers included', () => {
    const body = Buffer.from('5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n');
    const after = Buffer.concat([body, Buffer.from('NEXT')]);
    for (let cut = 1; cut < after.length; cut++) {
      const end = new ChunkedBodyEnd();
      const first = end.feed(after.subarray(0, cut));
      const found = first >= 0 ? first : cut + end.feed(after.subarray(cut));
      assert.equal(found, body.length, `cut at ${cut}`);
    }
    assert.throws(() => new ChunkedBodyEnd().feed(Buffer.from('5\r\nhello!\r\n')), /longer than its size/);
    assert.throws(() => new ChunkedBodyEnd().feed(Buffer.from('zz\r\n')), /malformed/);
  });
});
