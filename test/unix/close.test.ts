// A Unix-domain listener closes in two phases like a TCP one: the clients
// queued at the close are served, none reset; server.close() on the same
// queue resets them. Its gate (the path unlinked, the socket shut down for
// reading) refuses new connects while what was queued is served.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadBinding, type NativeBinding, type NativeHandle } from '../../src/core/native.js';
import { Listener, ListenSocket, listen, type ConnectionSink } from '../../src/index.js';
import { Opened, blockUntil, nextEvent, waitFor } from '../helpers/kit.js';
import { queuedClients, tally } from '../helpers/load.js';

const CLIENTS = 40;
const opened = new Opened();
afterEach(() => opened.dispose());

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  response.end(`served ${request.url}\n`);
}

/** A unique abstract name (a leading NUL): no file anywhere. */
function abstractName(): string {
  return `\0graceful-listener-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

/** Connects once to `socketPath`: 'connected' (then destroyed), or the error's code. */
function connectOutcome(socketPath: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = opened.track(net.connect({ path: socketPath }));
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe.each([
  ['a socket file', (dir: string) => path.join(dir, 'server.sock')],
  ['an abstract name', () => abstractName()],
])('on %s', (_kind, name) => {
  test('close() serves all 40 clients queued while paused, none reset', async () => {
    const socketPath = name(opened.tempDir('gl-unix-close-'));
    const server = http.createServer(answer);
    const listener = opened.listener(await listen(server, { path: socketPath }));
    expect(server.address()).toBe(socketPath);
    expect(listener.path).toBe(socketPath);
    listener.pause();
    const target = socketPath.startsWith('\0') ? `@${socketPath.slice(1)}` : socketPath;
    const clients = await queuedClients(target, CLIENTS);
    opened.child(clients.child);
    clients.go();
    await waitFor(() => `${CLIENTS} clients queued (${listener.pending().queued})`, () => listener.pending().queued === CLIENTS);
    expect(listener.pending({ handshakes: true })).toEqual({ queued: CLIENTS, backlog: 511, handshaking: 0 });

    const closing = listener.close();
    // The sweep accepted everything synchronously inside close().
    expect(listener.count).toBe(1 + CLIENTS);
    const report = await opened.settled(listener, closing);
    const results = await clients.results;
    expect(tally(results, (r) => r.error ?? String(r.status))).toEqual({ 200: CLIENTS });
    expect(results.every((r) => r.connected && r.connectionClose)).toBe(true);
    const { queuedAtClose, accepted, gated, handshakingAtClose, ended, destroyed } = report;
    expect({ queuedAtClose, accepted, gated, handshakingAtClose, ended, destroyed }).toEqual({
      queuedAtClose: CLIENTS,
      accepted: CLIENTS,
      gated: true,
      handshakingAtClose: 0,
      ended: 0,
      destroyed: 0,
    });
    if (!socketPath.startsWith('\0')) expect(fs.existsSync(socketPath)).toBe(false);
    // The name is free again: nobody listens there.
    expect(await connectOutcome(socketPath)).toBe(socketPath.startsWith('\0') ? 'ECONNREFUSED' : 'ENOENT');
    // As after Node's own close of a pipe server, address() still names the path.
    expect(server.listening).toBe(false);
    expect(server.address()).toBe(socketPath);
  });

  test('while draining, new connects are refused, never queued to be reset', async () => {
    const socketPath = name(opened.tempDir('gl-unix-gate-'));
    const held: net.Socket[] = [];
    const server = net.createServer((socket) => held.push(socket));
    const listener = opened.listener(await listen(server, { path: socketPath }));
    // One connection stays open: phase 2 waits for it, the socket stays open.
    const first = opened.track(net.connect({ path: socketPath }));
    await waitFor('the first connection accepted', () => held.length === 1);

    const closing = listener.close({ timeout: 60_000 });
    expect(listener.state).toBe('draining');
    // A file path is gone (ENOENT); an abstract name has no file, and the
    // socket, shut down for reading, refuses (ECONNREFUSED).
    const expected = socketPath.startsWith('\0') ? 'ECONNREFUSED' : 'ENOENT';
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => connectOutcome(socketPath)));
    expect(tally(outcomes, (o) => o)).toEqual({ [expected]: 10 });
    expect(listener.pending().queued).toBe(0);
    expect(() => listener.resume()).toThrow(expect.objectContaining({ code: 'ERR_UNIX_LISTENER' }));
    expect(listener.state).toBe('draining');

    first.end();
    held[0]!.end();
    const report = await opened.settled(listener, closing);
    expect(report.accepted).toBe(0);
    expect(report.served).toBe(1);
  });
});

test('server.close() of a server fed by listen({ path }) is the same two-phase close', async () => {
  const socketPath = path.join(opened.tempDir('gl-unix-server-close-'), 'app.sock');
  const server = http.createServer(answer);
  const listener = opened.listener(await listen(server, { path: socketPath }));
  listener.pause();
  const clients = await queuedClients(socketPath, CLIENTS);
  opened.child(clients.child);
  clients.go();
  await waitFor(() => `${CLIENTS} clients queued (${listener.pending().queued})`, () => listener.pending().queued === CLIENTS);

  const serverClosed = new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  expect(listener.state).toBe('draining');
  await opened.closed(listener);
  await serverClosed;
  const results = await clients.results;
  expect(tally(results, (r) => r.error ?? String(r.status))).toEqual({ 200: CLIENTS });
  expect(fs.existsSync(socketPath)).toBe(false);
});

test('server.listen(path) and server.close() reset the queued clients (what the listener prevents)', async () => {
  const dir = opened.tempDir('gl-unix-teeth-');
  const socketPath = path.join(dir, 'node.sock');
  const connectedFile = path.join(dir, 'connected');
  const server = opened.server(http.createServer(answer));
  server.listen(socketPath);
  await nextEvent(server, 'listening');
  const clients = await queuedClients(socketPath, CLIENTS, connectedFile);
  opened.child(clients.child);

  clients.go();
  // The loop stays blocked until every client is connected: an AF_UNIX
  // connect completes in the kernel, the connections wait in the queue.
  const queued = blockUntil(() => fs.existsSync(connectedFile));
  server.close();

  expect(queued).toBe(true);
  const results = await clients.results;
  const outcomes = tally(results, (r) => r.error ?? String(r.status));
  // A reset read (ECONNRESET), or a reset write (EPIPE); nobody answered.
  expect((outcomes.ECONNRESET ?? 0) + (outcomes.EPIPE ?? 0)).toBe(CLIENTS);
  expect(outcomes.ECONNRESET).toBeGreaterThan(CLIENTS / 2);
});

test('a failing sock_diag read at the close does not stop it: the queued clients are served, the error is reported', async () => {
  // The queue of a Unix-domain socket is read through sock_diag, which can
  // fail (ENOBUFS, no unix_diag): the handle here fails on demand.
  const real = loadBinding();
  let failing = false;
  const binding: NativeBinding = Object.assign(Object.create(real) as NativeBinding, {
    openUnix(...args: Parameters<NativeBinding['openUnix']>): NativeHandle {
      const handle = real.openUnix(...args);
      const queueDepth = handle.queueDepth.bind(handle);
      Object.defineProperty(handle, 'queueDepth', {
        value: () => {
          if (!failing) return queueDepth();
          throw Object.assign(new Error('sock_diag: ENOBUFS'), { code: 'ENOBUFS', errno: -105, syscall: 'recv' });
        },
      });
      return handle;
    },
  });
  const socketPath = path.join(opened.tempDir('gl-unix-diag-'), 'app.sock');
  const served: net.Socket[] = [];
  const sink: ConnectionSink<net.Socket> = {
    wrap: (fd) => opened.track(new net.Socket({ fd, readable: true, writable: true })),
    deliver: (socket) => {
      served.push(socket);
      socket.end('pong\n');
    },
    draining: () => {},
    endGently: (socket) => socket.end(),
    closed: () => {},
    limit: () => undefined,
  };
  const socket = opened.listenSocket(await ListenSocket.open({ path: socketPath }, binding));
  const listener = opened.listener(new Listener(socket));
  const errors: string[] = [];
  listener.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
  listener.serve(sink);
  listener.pause();
  const clients = Array.from({ length: 5 }, () => opened.track(net.connect({ path: socketPath })));
  await Promise.all(clients.map((client) => nextEvent(client, 'connect')));
  const replies = Promise.all(clients.map((client) => readAll(client)));
  await waitFor('5 clients queued', () => listener.pending().queued === 5);

  failing = true;
  const report = await opened.settled(listener, listener.close({ timeout: 60_000 }));
  expect(errors).toEqual(['ENOBUFS']);
  expect(served).toHaveLength(5);
  expect({ accepted: report.accepted, gated: report.gated, ended: report.ended, destroyed: report.destroyed }).toEqual({
    accepted: 5,
    gated: true,
    ended: 0,
    destroyed: 0,
  });
  expect(await replies).toEqual(Array(5).fill('pong\n'));
});

test('replace: a path whose temporary name would not fit sun_path is refused before anything is bound', async () => {
  const base = opened.tempDir('gl-unix-long-');
  // 107 bytes in all (the most a path may have), with a one-letter name.
  const dir = path.join(base, 'd'.repeat(107 - Buffer.byteLength(base) - 3));
  fs.mkdirSync(dir);
  const socketPath = path.join(dir, 'a');
  expect(Buffer.byteLength(socketPath)).toBe(107);
  const first = opened.listener(await listen(net.createServer(), { path: socketPath }));
  const error = await listen(net.createServer(), { path: socketPath, replace: true }).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  expect(fs.readdirSync(dir)).toEqual(['a']);
  // The first listener still serves the path.
  expect(await connectOutcome(socketPath)).toBe('connected');
  await first.close();
});

function readAll(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}
