// listen(server) for every kind of Node server: a real round trip, and the
// server looks as if it had listened ('listening', address(), listening,
// getConnections()). server.close() goes to the listener's two-phase close.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, certificate, connections, nextEvent, request, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** Reads a whole stream (until 'end') as text. */
function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

async function streamRoundTrip(socket: net.Socket): Promise<string> {
  opened.track(socket);
  socket.on('error', () => {});
  const reply = readAll(socket);
  socket.end('ping');
  const text = await reply;
  if (!socket.closed) await nextEvent(socket, 'close');
  return text;
}

async function http2RoundTrip(authority: string): Promise<string> {
  const session = opened.track(http2.connect(authority, { rejectUnauthorized: false }));
  try {
    const stream = session.request({ ':path': '/' });
    const [headers] = await nextEvent<[http2.IncomingHttpHeaders]>(stream, 'response');
    const body = await readAll(stream);
    return `${headers[':status']} ${body}`;
  } finally {
    const closed = session.destroyed ? undefined : nextEvent(session, 'close');
    session.close();
    await closed;
  }
}

interface Kind {
  name: string;
  make(): net.Server;
  roundTrip(port: number): Promise<string>;
  expected: string;
}

const kinds: Kind[] = [
  {
    name: 'net.Server',
    make: () => net.createServer((socket) => socket.on('data', (data) => socket.end(`pong:${data}`))),
    roundTrip: (port) => streamRoundTrip(net.connect({ port, host: HOST })),
    expected: 'pong:ping',
  },
  {
    name: 'tls.Server',
    make: () => tls.createServer(certificate(), (socket) => socket.on('data', (data) => socket.end(`pong:${data}`))),
    roundTrip: (port) => streamRoundTrip(tls.connect({ port, host: HOST, rejectUnauthorized: false })),
    expected: 'pong:ping',
  },
  {
    name: 'http.Server',
    make: () => http.createServer((_req, res) => res.end('hello http')),
    roundTrip: async (port) => {
      const reply = await request(port);
      return `${reply.status} ${reply.body}`;
    },
    expected: '200 hello http',
  },
  {
    name: 'https.Server',
    make: () => https.createServer(certificate(), (_req, res) => res.end('hello https')),
    roundTrip: async (port) => {
      const reply = await request(port, { secure: true });
      return `${reply.status} ${reply.body}`;
    },
    expected: '200 hello https',
  },
  {
    name: 'http2.createServer',
    make: () => http2.createServer((_req, res) => res.end('hello h2c')),
    roundTrip: (port) => http2RoundTrip(`http://${HOST}:${port}`),
    expected: '200 hello h2c',
  },
  {
    name: 'http2.createSecureServer',
    make: () => http2.createSecureServer(certificate(), (_req, res) => res.end('hello h2')),
    roundTrip: (port) => http2RoundTrip(`https://${HOST}:${port}`),
    expected: '200 hello h2',
  },
];

describe.each(kinds)('listen($name)', (kind) => {
  test("round trip; 'listening', address(), listening and getConnections() tell the truth", async () => {
    const server = kind.make();
    let listeningEvents = 0;
    server.on('listening', () => listeningEvents++);
    let serverClosed = 0;
    server.on('close', () => serverClosed++);

    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    expect(listeningEvents).toBe(1);
    expect(server.listening).toBe(true);
    const address = listener.address();
    expect(address).toMatchObject({ address: HOST, family: 'IPv4' });
    expect(address.port).toBeGreaterThan(0);
    expect(server.address()).toEqual(address);
    expect(listener.state).toBe('accepting');
    expect(listener.count).toBe(1);
    expect(await connections(server)).toBe(0);

    // A connection that stays open while the round trip runs: both count it.
    const held = opened.raw(address.port);
    await waitFor('the held connection to be accepted', () => listener.count === 2);
    expect(await connections(server)).toBe(1);

    expect(await kind.roundTrip(address.port)).toBe(kind.expected);

    held.socket.destroy();
    await waitFor(() => `count back to 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);
    expect(held.errors).toEqual([]);

    const serverClose = nextEvent(server, 'close');
    await listener.close();
    await serverClose;
    expect(listener.state).toBe('closed');
    expect(listener.count).toBe(0);
    expect(serverClosed).toBe(1);
    expect(server.listening).toBe(false);
    expect(server.address()).toBeNull();
  });
});

describe('server.close() routes to the two-phase close', () => {
  test('net.Server with no connection: the listener closes, the callback and the server\'s \'close\' run once', async () => {
    const server = net.createServer((socket) => socket.end());
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    let serverClosed = 0;
    server.on('close', () => serverClosed++);
    const listenerClosed = nextEvent(listener, 'close');

    const callback = new Promise<Error | undefined>((resolve) => server.close(resolve));
    expect(listener.state).not.toBe('accepting');
    expect(await callback).toBeUndefined();
    await listenerClosed;
    expect(listener.state).toBe('closed');
    expect(serverClosed).toBe(1);
  });

  test('http.Server with a request in flight: it is answered with Connection: close, then both close', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let requests = 0;
    const server = http.createServer(async (_req, res) => {
      requests++;
      await released;
      res.end('done');
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    const reply = request(port, { headers: { connection: 'keep-alive' } });
    await waitFor('the request to reach the handler', () => requests === 1);

    const listenerClosed = nextEvent(listener, 'close');
    const serverClosed = nextEvent(server, 'close');
    const callback = new Promise<Error | undefined>((resolve) => server.close(resolve));
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(2);

    release();
    const response = await reply;
    expect(response.status).toBe(200);
    expect(response.body).toBe('done');
    expect(response.headers.connection).toBe('close');
    await listenerClosed;
    await serverClosed;
    expect(await callback).toBeUndefined();
    expect(listener.state).toBe('closed');
    expect(listener.count).toBe(0);
  });
});
