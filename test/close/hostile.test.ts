// Slow and hostile peers during a drain, each on loopback with short
// deadlines: a slowloris client trickling header bytes, a TLS client that
// stops in the middle of its ClientHello, a peer that never reads a large
// response, a SYN that never completes, and a connect storm at the SYN gate.
// Each drain ends by its deadline (or by the server's own timeout, where that
// is what happens), the listener emits 'close', no client is reset after its
// connect succeeded unless the force deadline destroyed its connection, and
// no fd is left behind.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { listen, type CloseReport, type Listener } from '../../src/index.js';
import {
  Opened,
  anyFdPointsTo,
  certificate,
  codeOf,
  fdTarget,
  fdsBackTo,
  nextEvent,
  openFdTargets,
  waitFor,
} from '../helpers/kit.js';
import { startStorm } from '../helpers/load.js';
import { heldHandshake } from '../helpers/python.js';

const opened = new Opened();
let fdsBefore: string[] = [];
beforeEach(() => {
  fdsBefore = openFdTargets();
});
// Nothing a test opened outlives it: sockets (both sides), the listener's,
// the pipes of its child processes. They close asynchronously: wait (bounded).
afterEach(async () => {
  await opened.dispose();
  await fdsBackTo(fdsBefore, "the test's fds to be closed");
});

/** A client socket with what happened to it, in order. */
interface Peer {
  socket: net.Socket;
  events: string[];
  received: number;
  connected: boolean;
}

function peer(socket: net.Socket): Peer {
  const record: Peer = { socket: opened.track(socket), events: [], received: 0, connected: false };
  socket.on('connect', () => {
    record.connected = true;
    record.events.push('connect');
  });
  socket.on('data', (chunk: Buffer) => (record.received += chunk.length));
  socket.on('end', () => record.events.push('end'));
  socket.on('error', (error) => record.events.push(codeOf(error) ?? error.message));
  socket.on('close', () => record.events.push('close'));
  return record;
}

/**
 * What a test checks after every close: the listener emitted 'close', its
 * socket is gone from /proc/self/fd, nothing is left on the server side.
 */
async function closedAndGone(listener: Listener<net.Socket>, socketTarget: string, closing: Promise<CloseReport>): Promise<CloseReport> {
  const report = await closing;
  await opened.closed(listener);
  expect(listener.state).toBe('closed');
  expect(listener.count).toBe(0);
  expect(anyFdPointsTo(socketTarget)).toBe(false);
  return report;
}

async function httpListener(server: http.Server | https.Server): Promise<{ listener: Listener<net.Socket>; port: number; target: string }> {
  const listener = opened.listener(await listen(server, { host: '127.0.0.1', http: { quietWindow: 100, linger: 300 } }));
  server.on('connection', (socket: net.Socket) => socket.on('error', () => {}));
  return { listener, port: listener.address().port, target: fdTarget(listener.fd)! };
}

/** Writes one byte every `everyMs` until the socket can no longer be written; returns a stop function. */
function trickle(socket: net.Socket, text: string, everyMs: number): () => void {
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) return;
    socket.write(text[at % text.length]!);
    at++;
  }, everyMs);
  return () => clearInterval(timer);
}

describe('slowloris: header bytes trickling in while the server drains', () => {
  const slowHeaders = 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';

  test('default headersTimeout: each byte restarts the quiet window, so the deadline ends it (FIN) and the force deadline destroys it', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const { listener, port, target } = await httpListener(server);
    // Half-open: it ignores the server's FIN and goes on trickling, as slowloris does.
    const client = peer(net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }));
    await nextEvent(client.socket, 'connect');
    await waitFor('the connection accepted', () => listener.count === 2);
    const stop = trickle(client.socket, slowHeaders, 20);
    try {
      const report = await closedAndGone(listener, target, listener.close({ timeout: 400, forceTimeout: 400 }));
      expect(report).toMatchObject({ openAtClose: 1, served: 0, ended: 1, destroyed: 1, protocol: { http: { endedIdle: 0 } } });
      // The FIN came at the deadline; nothing reset it before. A byte the
      // trickle sends after the force deadline's destroy may draw a RST.
      expect(client.events.slice(0, 2)).toEqual(['connect', 'end']);
      expect(client.events.slice(2).filter((event) => !['ECONNRESET', 'EPIPE', 'close'].includes(event))).toEqual([]);
    } finally {
      stop();
    }
  });

  test("a short headersTimeout: Node's own timeout answers 408 and closes it before the close deadline", async () => {
    const server = http.createServer({ headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 50 }, (_request, response) =>
      response.end('ok'),
    );
    const { listener, port, target } = await httpListener(server);
    const client = peer(net.connect({ port, host: '127.0.0.1' }));
    let text = '';
    client.socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    await nextEvent(client.socket, 'connect');
    await waitFor('the connection accepted', () => listener.count === 2);
    const stop = trickle(client.socket, slowHeaders, 20);
    try {
      const report = await closedAndGone(listener, target, listener.close({ timeout: 20_000, forceTimeout: 1000 }));
      // Closed by the server itself: the drain counts it served, cut nothing.
      expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
      await waitFor('the client to close', () => client.events.includes('close'));
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
      // Node destroys the socket right after writing the 408: a byte of the
      // trickle arriving in between makes that close a RST. That is Node's
      // timeout path, not the drain's; nothing else may happen.
      expect(client.events.filter((event) => !['connect', 'end', 'close', 'ECONNRESET'].includes(event))).toEqual([]);
    } finally {
      stop();
    }
  });
});

/** The first bytes a TLS client sends: its ClientHello record. */
async function clientHello(): Promise<Buffer> {
  const capture = opened.server(net.createServer());
  capture.listen(0, '127.0.0.1');
  await nextEvent(capture, 'listening');
  const hello = new Promise<Buffer>((resolve) => capture.once('connection', (socket: net.Socket) => socket.once('data', resolve)));
  const client = opened.track(tls.connect({ port: (capture.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost' }));
  client.on('error', () => {});
  const bytes = await hello;
  client.destroy();
  capture.close();
  return bytes;
}

describe('a TLS client that stops in the middle of its ClientHello', () => {
  async function partialHello(handshakeTimeout: number | undefined, close: { timeout: number; forceTimeout: number }) {
    const hello = await clientHello();
    const { key, cert } = certificate();
    const server = https.createServer({ key, cert, ...(handshakeTimeout !== undefined ? { handshakeTimeout } : {}) }, (_request, response) =>
      response.end('ok'),
    );
    const { listener, port, target } = await httpListener(server);
    const client = peer(net.connect({ port, host: '127.0.0.1' }));
    await nextEvent(client.socket, 'connect');
    client.socket.write(hello.subarray(0, Math.floor(hello.length / 2)));
    await waitFor('the connection accepted', () => listener.count === 2);
    const report = await closedAndGone(listener, target, listener.close(close));
    await waitFor('the client to close', () => client.events.includes('close'));
    return { report, client };
  }

  test('default handshakeTimeout (120 s): the close deadline ends it with a FIN, never a reset', async () => {
    const { report, client } = await partialHello(undefined, { timeout: 300, forceTimeout: 1000 });
    // No protocol drain owns a handshake in progress: the deadline does.
    expect(report).toMatchObject({ openAtClose: 1, served: 0, ended: 1 });
    expect(report.destroyed).toBeLessThanOrEqual(1);
    expect(client.events).toEqual(['connect', 'end', 'close']);
    expect(client.received).toBe(0);
  });

  test("a short handshakeTimeout: the https server's own timeout closes it before the close deadline", async () => {
    const { report, client } = await partialHello(200, { timeout: 20_000, forceTimeout: 1000 });
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(client.events).toEqual(['connect', 'end', 'close']);
  });
});

describe('a peer that never reads a large response', () => {
  test('the response blocks in the socket buffers; the deadline cannot end it, the force deadline destroys it', async () => {
    const body = Buffer.alloc(32 * 1024 * 1024, 0x61);
    const server = http.createServer((_request, response) => response.end(body));
    const { listener, port, target } = await httpListener(server);
    const client = peer(net.connect({ port, host: '127.0.0.1' }));
    await nextEvent(client.socket, 'connect');
    client.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    // Read a little, then nothing: the server's writes fill both socket buffers.
    await waitFor('the response to start', () => client.received > 0);
    client.socket.pause();
    const report = await closedAndGone(listener, target, listener.close({ timeout: 300, forceTimeout: 300 }));
    // The gentle end queues a FIN behind data that never drains.
    expect(report).toMatchObject({ openAtClose: 1, served: 0, ended: 1, destroyed: 1 });
    expect(client.events).toEqual(['connect']);
    client.socket.resume();
    await waitFor('the client to close', () => client.events.includes('close'), { tries: 500 });
    expect(client.received).toBeLessThan(body.length);
    // Destroyed by the force deadline: the kernel may still deliver what it
    // had queued and a FIN, or reset it; nothing else.
    expect(client.events.filter((event) => !['connect', 'end', 'close', 'ECONNRESET'].includes(event))).toEqual([]);
  });
});

describe('a SYN that never completes', () => {
  test('the close gives it up by the deadline; when the client comes back after the close it is refused, never reset after a connect', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const { listener, port, target } = await httpListener(server);
    const held = await heldHandshake(opened, port);
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, { tries: 100, intervalMs: 50 });
    const report = await closedAndGone(listener, target, listener.close({ timeout: 1000, forceTimeout: 500 }));
    expect(report).toMatchObject({ handshakingAtClose: 1, handshakesAbandoned: 1, openAtClose: 0, accepted: 0, ended: 0, destroyed: 0 });
    // Its next SYN retransmission finds the port closed.
    held.go();
    expect(await held.result).toEqual({ connected: false, error: 'ECONNREFUSED', response: '' });
  });
});

describe('a connect storm at the SYN gate', () => {
  test('closing under a storm with a drain held open: every client is answered, refused or timed out, none reset after connecting; a burst of connects during the drain is refused', async () => {
    let served = 0;
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        served++;
        socket.end('pong\n');
      });
    });
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const { port } = listener.address();
    const target = fdTarget(listener.fd)!;
    // A silent connection that keeps the drain in phase 2 until the deadline.
    const holder = peer(net.connect({ port, host: '127.0.0.1' }));
    await nextEvent(holder.socket, 'connect');
    await waitFor('the holder accepted', () => listener.count === 2);
    // 2000 connects/s for 1.5 s; a connect gives up after 4 s, 6 s of grace.
    const storm = startStorm(opened, port, { rate: 2000, maxMs: 1500, graceMs: 6000, connectTimeoutMs: 4000 });
    await waitFor('the storm to reach the server', () => served >= 100, { tries: 500 });

    const closing = listener.close({ timeout: 2000, forceTimeout: 2000 });
    // At once, in the same tick: these SYNs meet the gate or the shut-down socket.
    const burst = Array.from({ length: 100 }, () => peer(net.connect({ port, host: '127.0.0.1' })));
    const report = await closedAndGone(listener, target, closing);
    const result = await storm.result;

    expect(result).toMatchObject({ resetEstablished: 0, resetConnecting: 0, noAnswer: 0, stalled: 0, other: {} });
    expect(result.answered).toBe(result.established);
    expect(result.attempted).toBe(result.established + result.refused + result.timedOut);
    expect(result.established).toBe(served);
    expect(result.refused).toBeGreaterThan(0);
    // The holder was ended at the deadline; everything else finished on its own.
    expect(report).toMatchObject({ gated: true, queueLost: 0, destroyed: 0 });
    expect(report.ended).toBe(1);
    expect(holder.events).toEqual(['connect', 'end', 'close']);
    await waitFor('the burst to settle', () => burst.every((client) => client.events.includes('close')), { tries: 500 });
    expect(burst.filter((client) => client.connected)).toEqual([]);
    expect(new Set(burst.flatMap((client) => client.events.filter((event) => event !== 'close')))).toEqual(new Set(['ECONNREFUSED']));
  });
});
