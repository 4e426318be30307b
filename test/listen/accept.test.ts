// The accept path under listen(server): the count, server.maxConnections
// honoured by pausing accept (clients wait in the kernel queue instead of
// being accepted and dropped), and pause()/resume().
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, connections, waitFor, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** A net server that greets each connection and ends when the client ends. */
function greeter(): { server: net.Server; open: Set<net.Socket>; served: () => number; maxOpen: () => number } {
  const open = new Set<net.Socket>();
  let served = 0;
  let maxOpen = 0;
  const server = net.createServer((socket) => {
    served++;
    open.add(socket);
    maxOpen = Math.max(maxOpen, open.size);
    socket.on('close', () => open.delete(socket));
    socket.resume();
    socket.write('hello\n');
  });
  return { server, open, served: () => served, maxOpen: () => maxOpen };
}

const greeted = (client: RawClient): boolean => client.data === 'hello\n';

describe('count', () => {
  test('+1 per accepted connection, back to 1 as they close, 0 once closed', async () => {
    const { server, open } = greeter();
    const counts: number[] = [];
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    listener.on('connection', () => counts.push(listener.count));
    const { port } = listener.address();
    expect(listener.count).toBe(1);

    const clients = [opened.raw(port), opened.raw(port), opened.raw(port)];
    await waitFor('3 greetings', () => clients.every(greeted));
    expect(listener.count).toBe(4);
    expect(await connections(server)).toBe(3);
    // 'connection' fires once each, counted by then (a batch may be counted together).
    expect(counts).toHaveLength(3);
    expect(Math.min(...counts)).toBeGreaterThanOrEqual(2);
    expect(counts[2]).toBe(4);

    clients[0]!.socket.end();
    await waitFor(() => `count 3 (is ${listener.count})`, () => listener.count === 3);
    // Destroyed from both ends at once, the server side twice: each released once.
    for (const client of clients.slice(1)) client.socket.destroy();
    for (const socket of open) {
      socket.destroy();
      socket.destroy();
    }
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);
    expect(clients.map((client) => client.errors)).toEqual([[], [], []]);

    await listener.close();
    expect(listener.count).toBe(0);
  });

  test('never below 1 while open: connections the server destroys at once are released once each', async () => {
    const server = net.createServer((socket) => {
      socket.destroy();
      socket.destroy();
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const seen: number[] = [];
    const sample = (): void => void seen.push(listener.count);
    listener.on('connection', (socket: net.Socket) => socket.once('close', () => setImmediate(sample)));
    const { port } = listener.address();

    const clients = Array.from({ length: 6 }, () => opened.raw(port));
    await waitFor('all clients to be closed by the server', () => clients.every((client) => client.closed));
    await waitFor('6 releases', () => seen.length === 6);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(1);
    expect(listener.count).toBe(1);
    expect(await connections(server)).toBe(0);
    await listener.close();
  });
});

describe('server.maxConnections', () => {
  test('limit 2, 5 clients: 2 served at once, 3 wait in the kernel queue, all 5 served, none reset', async () => {
    const { server, open, served, maxOpen } = greeter();
    server.maxConnections = 2;
    let drops = 0;
    server.on('drop', () => drops++);
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    const clients = Array.from({ length: 5 }, () => opened.raw(port));
    await waitFor('all 5 clients connected (kernel handshake)', () => clients.every((client) => client.connected));
    await waitFor(
      () => `2 greeted and 3 queued (greeted ${clients.filter(greeted).length}, queued ${listener.pending().queued})`,
      () => clients.filter(greeted).length === 2 && listener.pending().queued === 3,
    );
    expect(served()).toBe(2);
    expect(await connections(server)).toBe(2);
    expect(listener.count).toBe(3);

    // Each client that was greeted leaves; the next queued one is accepted.
    const left = new Set<RawClient>();
    await waitFor(
      () => `all 5 served (served ${served()})`,
      () => {
        for (const client of clients) {
          if (greeted(client) && !left.has(client)) {
            left.add(client);
            client.socket.end();
          }
        }
        return served() === 5 && left.size === 5;
      },
    );
    await waitFor('every client closed', () => clients.every((client) => client.closed));
    expect(maxOpen()).toBe(2);
    expect(drops).toBe(0);
    expect(clients.map((client) => client.errors)).toEqual([[], [], [], [], []]);
    expect(clients.every((client) => client.ended)).toBe(true);
    expect(listener.pending().queued).toBe(0);
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1 && open.size === 0);
    await listener.close();
  });
});

describe('pause() and resume()', () => {
  test('clients that connect while paused wait in the queue and are served after resume(), none reset', async () => {
    const { server, served } = greeter();
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    // One connection before the pause stays served.
    const early = opened.raw(port);
    await waitFor('the early client to be greeted', () => greeted(early));

    listener.pause();
    expect(listener.paused).toBe(true);
    expect(listener.state).toBe('accepting');
    const clients = Array.from({ length: 4 }, () => opened.raw(port));
    await waitFor('all 4 clients connected (kernel handshake)', () => clients.every((client) => client.connected));
    await waitFor(() => `4 queued (is ${listener.pending().queued})`, () => listener.pending().queued === 4);
    expect(served()).toBe(1);
    expect(clients.some(greeted)).toBe(false);
    expect(listener.count).toBe(2);

    listener.resume();
    expect(listener.paused).toBe(false);
    await waitFor('all 4 greeted after resume()', () => clients.every(greeted));
    expect(served()).toBe(5);
    expect(listener.pending().queued).toBe(0);
    expect([early, ...clients].map((client) => client.errors)).toEqual([[], [], [], [], []]);
    expect([early, ...clients].some((client) => client.closed)).toBe(false);

    for (const client of [early, ...clients]) client.socket.end();
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    await listener.close();
  });
});
