// Close paths that used to reset, wedge or leak, each on loopback: a resume()
// from a 'draining' listener, a 'connection' listener that destroys the
// socket, a handshake that never completes, accept(2) failing after another
// owner shut the socket down, a server.close() while listen() resolves its
// host, and Node's net.server.socket diagnostics channel.
import diagnosticsChannel from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, listen, type CloseReport } from '../../src/index.js';
import { Opened, codeOf, connections, nextEvent, waitFor } from '../helpers/kit.js';
import { heldHandshake } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** One keep-alive GET: the status and the Connection header. */
function get(port: number, agent: http.Agent): Promise<{ status?: number; connection?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, agent }, (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode, connection: response.headers.connection }));
      })
      .on('error', reject);
  });
}

describe("resume() from a 'draining' listener", () => {
  test('HTTP/1.1: the server leaves drain mode; responses are keep-alive again', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const { port } = listener.address();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    expect(await get(port, agent)).toEqual({ status: 200, connection: 'keep-alive' });
    listener.once('draining', () => listener.resume());
    const aborted = listener.close().catch((error: { code?: string }) => error.code);
    expect(await aborted).toBe('ERR_CLOSE_ABORTED');
    expect(listener.state).toBe('accepting');
    expect(await get(port, agent)).toEqual({ status: 200, connection: 'keep-alive' });
    // A fresh connection too.
    const fresh = new http.Agent({ keepAlive: true });
    expect(await get(port, fresh)).toEqual({ status: 200, connection: 'keep-alive' });
    agent.destroy();
    fresh.destroy();
  });

  test('HTTP/2: a session that connects after the resume gets no GOAWAY', async () => {
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    listener.once('draining', () => listener.resume());
    await listener.close().catch(() => {});
    const session = http2.connect(`http://127.0.0.1:${listener.address().port}`);
    let goaways = 0;
    session.on('goaway', () => goaways++);
    session.on('error', () => {});
    for (let i = 0; i < 3; i++) {
      const stream = session.request({ ':path': '/' });
      stream.resume();
      await nextEvent(stream, 'close');
    }
    // A PING round trip: anything the server sent before its ACK has arrived.
    await new Promise<void>((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
    expect(goaways).toBe(0);
    session.close();
    await nextEvent(session, 'close');
  });
});

test("a 'connection' listener that destroys the socket: the server's count stays right and server.close(cb) calls back", async () => {
  const server = net.createServer((socket) => socket.on('error', () => {}));
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  listener.once('connection', (socket: net.Socket) => socket.destroy());
  const { port } = listener.address();
  const refused = opened.track(net.connect({ port, host: '127.0.0.1' }));
  refused.on('error', () => {});
  await nextEvent(refused, 'close');
  await waitFor('the destroyed connection to be released', () => listener.count === 1);
  expect(await connections(server)).toBe(0);
  const called = new Promise<Error | undefined>((resolve) => server.close(resolve));
  expect(await called).toBeUndefined();
  await opened.closed(listener);
});

describe('a handshake that never completes (a spoofed SYN, a client that vanished)', () => {
  test('is given up after its SYN-ACK retransmit: the close does not wait for its deadline, and a client arriving meanwhile is refused, not left hanging', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const { port } = listener.address();
    await heldHandshake(opened, port);
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 100,
      intervalMs: 50,
    });
    const closing = listener.close({ timeout: 120_000 });
    // Its SYN is dropped by the gate; once phase 1 ends its retransmit is refused.
    const latecomer = opened.connectOutcome(port);
    expect(await latecomer).toBe('ECONNREFUSED');
    const report: CloseReport = await closing;
    await opened.closed(listener);
    expect(report).toMatchObject({ handshakingAtClose: 1, handshakesAbandoned: 1, gated: true, ended: 0, destroyed: 0 });
  });

  test('handshakeWait bounds the wait however long the handshake has left', async () => {
    const server = net.createServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    await heldHandshake(opened, listener.address().port);
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 100,
      intervalMs: 50,
    });
    const report = await listener.close({ timeout: 120_000, handshakeWait: 0 });
    expect(report).toMatchObject({ handshakingAtClose: 1, handshakesAbandoned: 1 });
  });
});

describe('accept(2) failing after another owner of the socket shut it down (EINVAL)', () => {
  test('accepting: the error is reported and accepting resumes once the socket listens again', async () => {
    const server = net.createServer((socket) => socket.end('hi'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const errors: string[] = [];
    listener.on('error', (error: Error) => errors.push(codeOf(error) ?? error.message));
    const coOwner = ListenSocket.adopt(listener.fd);
    try {
      // A shut-down listener polls readable: accept(2) fails with EINVAL.
      coOwner.shutdown();
      await waitFor('the accept error', () => errors.length > 0);
      coOwner.listen();
      const client = opened.track(net.connect({ port: listener.address().port, host: '127.0.0.1' }));
      client.setEncoding('utf8');
      const [[greeting]] = await Promise.all([nextEvent<[string]>(client, 'data'), nextEvent(client, 'connect')]);
      expect(greeting).toBe('hi');
      expect(errors[0]).toBe('EINVAL');
    } finally {
      coOwner.close();
    }
  });

  test('draining: there is no queue left to sweep, and the close ends', async () => {
    const server = net.createServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    listener.on('error', () => {});
    const coOwner = ListenSocket.adopt(listener.fd);
    try {
      listener.pause();
      coOwner.shutdown();
      const report = await listener.close({ timeout: 100, forceTimeout: 100 });
      expect(report).toMatchObject({ queueLost: 0, ended: 0, destroyed: 0 });
    } finally {
      coOwner.close();
    }
  });
});

test('server.close() while listen() resolves its host cancels the listen, as it cancels Node\'s own', async () => {
  const server = http.createServer();
  const closed = nextEvent(server, 'close');
  const listening = listen(server, { host: 'localhost', family: 4 });
  server.close();
  await expect(listening).rejects.toMatchObject({ name: 'ListenerError', code: 'ERR_SERVER_CLOSED' });
  await closed;
  expect(server.listening).toBe(false);
  // The server is free for a later listen().
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  expect(server.listening).toBe(true);
  await listener.close();
});

test("accepted sockets are published on Node's net.server.socket diagnostics channel", async () => {
  const published: net.Socket[] = [];
  const onMessage = (message: unknown): void => {
    published.push((message as { socket: net.Socket }).socket);
  };
  diagnosticsChannel.subscribe('net.server.socket', onMessage);
  try {
    const seen: net.Socket[] = [];
    const server = net.createServer((socket) => {
      seen.push(socket);
      socket.end();
    });
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const client = opened.track(net.connect({ port: listener.address().port, host: '127.0.0.1' }));
    client.resume();
    await nextEvent(client, 'close');
    expect(published).toEqual(seen);
    expect(published).toHaveLength(1);
  } finally {
    diagnosticsChannel.unsubscribe('net.server.socket', onMessage);
  }
});
