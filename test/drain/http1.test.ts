// Issue 5, HTTP/1.1: from the drain start every response carries
// `Connection: close`; idle keep-alive connections are not cut (their next
// request may be on the wire) but answered, or ended with a FIN after the
// quiet window; pipelined requests already read are answered; an allowHTTP1
// connection on an HTTP/2 server follows the same rules.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type Listener } from '../../src/index.js';
import {
  Counter,
  HOST,
  Opened,
  certificate,
  protocolOf,
  rawGet,
  requestLoops,
  when,
  within,
  type Exchange,
} from '../helpers/kit.js';

const LOOPS = 64;
const RESPONSES_BEFORE_CLOSE = 640;
// A hang bound per loop, far above what the test needs.
const MAX_REQUESTS_PER_LOOP = 5_000;

const opened = new Opened();
afterEach(() => opened.dispose());

/** Answers each request on the next turn of the loop; `x-draining` says whether the drain had begun when the headers were made. */
function answering(listener: () => Listener<net.Socket> | undefined): http.RequestListener {
  return (_request, response) => {
    setImmediate(() => {
      response.setHeader('x-draining', String(listener()?.state === 'draining'));
      response.end('ok');
    });
  };
}

/** A server that holds each request until `release()`; from then on it answers at once. */
function holding() {
  const held: http.ServerResponse[] = [];
  const arrived = new Counter();
  let released = false;
  const answer = (response: http.ServerResponse): void => {
    response.end(`ok ${response.req.url}`);
  };
  const handler: http.RequestListener = (_request, response) => {
    arrived.add();
    if (released) answer(response);
    else held.push(response);
  };
  return {
    handler,
    arrived,
    release(): void {
      released = true;
      for (const response of held.splice(0)) answer(response);
    },
  };
}

describe.each([
  { name: 'http', secure: false },
  { name: 'https', secure: true },
])('$name', ({ secure }) => {
  test(`${LOOPS} keep-alive loops, close() mid-load: every request succeeds or is refused before it is sent`, async () => {
    let listener: Listener<net.Socket> | undefined;
    const handler = answering(() => listener);
    const server = secure ? https.createServer(certificate(), handler) : http.createServer(handler);
    // A long quiet window: no connection of this load is idle, so none may be ended as idle.
    listener = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 10_000 } }));
    const port = listener.address().port;
    const agent = opened.track(
      secure
        ? new https.Agent({ keepAlive: true, maxSockets: LOOPS, ca: certificate().cert, servername: 'localhost' })
        : new http.Agent({ keepAlive: true, maxSockets: LOOPS }),
    );
    let closing: ReturnType<Listener['close']> | undefined;
    let succeeded = 0;
    const outcomes = await within(
      requestLoops({
        loops: LOOPS,
        maxPerLoop: MAX_REQUESTS_PER_LOOP,
        send: () => (secure ? https : http).request({ host: HOST, port, path: '/', agent }),
        onExchange(outcome) {
          if (outcome.ok && ++succeeded === RESPONSES_BEFORE_CLOSE) closing = listener!.close({ timeout: 20_000 });
        },
      }),
      'the request loops',
    );
    expect(closing).toBeDefined();
    const report = await opened.settled(listener, closing!);

    const failures = outcomes.filter((outcome) => !outcome.ok);
    // Each loop ends with one refusal of a new connection, its request never written.
    expect(failures).toHaveLength(LOOPS);
    for (const failure of failures) {
      expect(failure).toEqual({ ok: false, failure: 'ECONNREFUSED', reusedSocket: false, written: false });
    }
    const responses = outcomes.filter((outcome): outcome is Required<Exchange> => outcome.ok);
    expect(responses.every((response) => response.status === 200 && response.body === 'ok')).toBe(true);
    const draining = responses.filter((response) => response.headers['x-draining'] === 'true');
    const before = responses.filter((response) => response.headers['x-draining'] === 'false');
    expect(draining.length + before.length).toBe(responses.length);
    expect(draining.every((response) => response.headers.connection === 'close')).toBe(true);
    expect(before.every((response) => response.headers.connection === 'keep-alive')).toBe(true);
    expect(draining.length).toBeGreaterThan(0);

    const { http: figures } = protocolOf(report);
    expect(figures).toEqual({ closedAfterResponse: draining.length, endedIdle: 0 });
    // Every connection left after exactly one `Connection: close` response.
    expect(figures!.closedAfterResponse).toBe(report.openAtClose + report.accepted);
    expect(report.ended + report.destroyed).toBe(0);
  });

  test('a connection idle at the drain start is not cut: its next request is answered with Connection: close', async () => {
    const server = secure ? https.createServer(certificate()) : http.createServer();
    server.on('request', (_request: http.IncomingMessage, response: http.ServerResponse) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 600_000 } }));
    const raw = opened.raw(listener.address().port, { secure });
    raw.socket.write(rawGet('/first'));
    expect((await raw.response()).headers.connection).toBe('keep-alive');

    const closing = listener.close({ timeout: 600_000 });
    expect(listener.state).toBe('draining');
    raw.socket.write(rawGet('/second'));
    const second = await raw.response();
    await raw.endAfterServer();
    const report = await opened.settled(listener, closing);

    expect(second).toEqual({ status: 200, headers: expect.objectContaining({ connection: 'close' }), body: 'ok' });
    expect(raw.errors).toEqual([]);
    expect(protocolOf(report).http).toEqual({ closedAfterResponse: 1, endedIdle: 0 });
    expect(report.ended + report.destroyed).toBe(0);
  });

  test('a connection that stays idle gets a FIN after the quiet window, not a reset', async () => {
    const server = secure ? https.createServer(certificate()) : http.createServer();
    server.on('request', (_request: http.IncomingMessage, response: http.ServerResponse) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 50 } }));
    const client = opened.raw(listener.address().port, { secure });
    client.socket.write(rawGet());
    await client.response();

    const closing = listener.close({ timeout: 600_000 });
    await client.endAfterServer();
    const report = await opened.settled(listener, closing);

    expect(client.ended).toBe(true);
    expect(client.data).toBe('');
    expect(client.errors).toEqual([]);
    expect(protocolOf(report).http).toEqual({ closedAfterResponse: 0, endedIdle: 1 });
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
  });
});

test('pipelined requests already read are all answered; only the last response carries Connection: close', async () => {
  const { handler, arrived, release } = holding();
  const listener = opened.listener(await listen(http.createServer(handler), { host: HOST }));
  const raw = opened.raw(listener.address().port);
  raw.socket.write(rawGet('/a') + rawGet('/b') + rawGet('/c'));
  await arrived.reached(3, 'the three pipelined requests at the server');

  const closing = listener.close({ timeout: 600_000 });
  release();
  const responses = [await raw.response(), await raw.response(), await raw.response()];
  await raw.endAfterServer();
  const report = await opened.settled(listener, closing);

  expect(responses.map((response) => [response.body, response.headers.connection])).toEqual([
    ['ok /a', 'keep-alive'],
    ['ok /b', 'keep-alive'],
    ['ok /c', 'close'],
  ]);
  expect(raw.errors).toEqual([]);
  expect(protocolOf(report).http).toEqual({ closedAfterResponse: 1, endedIdle: 0 });
});

test('allowHTTP1 on an HTTP/2 server: the HTTP/1.1 connection gets Connection: close, the HTTP/2 session its GOAWAY pair', async () => {
  const server = http2.createSecureServer({ ...certificate(), allowHTTP1: true });
  const h2Streams = new Counter();
  const heldStreams: http2.ServerHttp2Stream[] = [];
  server.on('request', (request: http.IncomingMessage | http2.Http2ServerRequest, response) => {
    if (request.httpVersionMajor === 2) return;
    response.end('ok');
  });
  server.on('stream', (stream) => {
    heldStreams.push(stream);
    h2Streams.add();
  });
  const listener = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 600_000 } }));
  const port = listener.address().port;

  const raw = opened.raw(port, { secure: true });
  raw.socket.write(rawGet('/first'));
  expect((await raw.response()).headers.connection).toBe('keep-alive');
  const session = opened.track(http2.connect(`https://localhost:${port}`, { host: HOST, ca: certificate().cert }));
  const goaways: number[] = [];
  session.on('goaway', (_code: number, lastStreamId: number) => goaways.push(lastStreamId));
  const stream = session.request({ ':path': '/' });
  stream.resume();
  await h2Streams.reached(1, 'the HTTP/2 stream at the server');

  const closing = listener.close({ timeout: 600_000 });
  raw.socket.write(rawGet('/second'));
  const second = await raw.response();
  await raw.endAfterServer();
  await when(session, ['goaway'], () => goaways.length === 2, 'the final GOAWAY');
  for (const held of heldStreams) {
    held.respond({ ':status': 200 });
    held.end('ok');
  }
  await within(new Promise((resolve) => stream.on('close', resolve)), 'the HTTP/2 stream to finish');
  const report = await opened.settled(listener, closing);

  expect(second.headers.connection).toBe('close');
  expect(raw.errors).toEqual([]);
  expect(goaways).toEqual([2 ** 31 - 1, 1]);
  expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  expect(protocolOf(report)).toEqual({
    http: { closedAfterResponse: 1, endedIdle: 0 },
    http2: { sessions: 1 },
    drainHooks: 0,
  });
});
