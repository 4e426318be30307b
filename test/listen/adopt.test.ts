// adopt(server): a server that already called server.listen() hands its
// socket over with its accept queue. Clients that connected while the event
// loop was blocked (Node had no chance to accept them) are all served by the
// listener, none reset.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, adopt } from '../../src/index.js';
import { Opened, connections, nodeListen, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const blocker = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the event loop for `ms` (Atomics.wait on the main thread of a Node process). */
const blockFor = (ms: number): void => void Atomics.wait(blocker, 0, 0, ms);

/**
 * With the event loop blocked, waits (bounded) until the kernel queue of the
 * server's socket holds `count` connections; reads it through a probe dup.
 */
function queuedWhileBlocked(server: net.Server, count: number): number {
  const probe = ListenSocket.adopt(server);
  try {
    for (let i = 0; i < 2000 && probe.pending().queued < count; i++) blockFor(1);
    return probe.pending().queued;
  } finally {
    probe.close();
  }
}

describe('adopt(server)', () => {
  test('clients queued in the kernel before adopt() are all served after it, none reset', async () => {
    const N = 8;
    const server = opened.server(http.createServer((req, res) => res.end(`adopted ${req.url}`)));
    const port = await nodeListen(server);
    const before = server.address();
    let nodeListening = 0;
    server.on('listening', () => nodeListening++);

    const clients = Array.from({ length: N }, (_, i) => {
      const client = opened.raw(port);
      client.socket.write(`GET /${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      return client;
    });
    // connect(2) runs on the next tick for an IP host; from here to adopt() the
    // event loop does not run, so Node cannot accept any of them.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    expect(queuedWhileBlocked(server, N)).toBe(N);
    const listener = opened.listener(adopt(server));

    expect(nodeListening).toBe(0);
    expect(server.listening).toBe(true);
    expect(server.address()).toEqual(before);
    expect(listener.address()).toEqual(before);
    let accepted = 0;
    listener.on('connection', () => accepted++);

    await waitFor('every client answered and closed', () => clients.every((client) => client.closed));
    for (const [i, client] of clients.entries()) {
      expect(client.errors).toEqual([]);
      expect(client.data).toMatch(/^HTTP\/1\.1 200 /);
      expect(client.data.endsWith(`adopted /${i}`)).toBe(true);
    }
    expect(accepted).toBe(N);
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);

    // New clients after adopt() are the listener's too.
    const late = opened.raw(port);
    late.socket.write('GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await waitFor('the late client answered', () => late.closed);
    expect(late.data.endsWith('adopted /late')).toBe(true);
    expect(accepted).toBe(N + 1);

    const serverClosed = new Promise((resolve) => server.once('close', resolve));
    await listener.close();
    await serverClosed;
    expect(server.listening).toBe(false);
  });

  test('connections Node accepted before adopt() stay with the server; server.close() then closes both', async () => {
    const server = opened.server(
      net.createServer((socket) => {
        socket.resume();
        socket.write('hello\n');
      }),
    );
    const port = await nodeListen(server);
    const early = opened.raw(port);
    await waitFor('the early client greeted by Node', () => early.data === 'hello\n');

    const listener = opened.listener(adopt(server));
    const late = opened.raw(port);
    await waitFor('the late client greeted through the listener', () => late.data === 'hello\n');
    expect(listener.count).toBe(2);
    expect(await connections(server)).toBe(2);

    const listenerClosed = new Promise((resolve) => listener.once('close', resolve));
    const serverClosed = new Promise((resolve) => server.once('close', resolve));
    server.close();
    late.socket.end();
    await listenerClosed;
    early.socket.end();
    await serverClosed;
    expect(listener.state).toBe('closed');
    expect(early.errors).toEqual([]);
    expect(late.errors).toEqual([]);
  });
});
