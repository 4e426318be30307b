import fs from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { loadBinding } from '../../src/core/native.js';
import { ListenSocket } from '../../src/index.js';
import { HOST, Opened, acceptExactly, readEach, sleep, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe('disarmed queue and arm', () => {
  test('8 clients connect to a never-armed listener: queued, not reset, then all accepted', async () => {
    const N = 8;
    const listener = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    expect(listener.armed).toBe(false);
    const { port } = listener.address();
    const clients = Array.from({ length: N }, (_, i) => opened.raw(port, { greeting: `client-${i}\n` }));

    await waitFor('all clients connected', () => clients.every((client) => client.connected));
    await waitFor(`queued === ${N}`, () => listener.pending().queued === N);
    // Let the clients' greetings land and any RST arrive before judging.
    await sleep(100);
    expect(listener.pending().queued).toBe(N);
    for (const client of clients) {
      expect(client.errors).toEqual([]);
      expect(client.closed).toBe(false);
      expect(client.ended).toBe(false);
    }

    const { fds } = await acceptExactly(listener, opened, N);
    expect(fds).toHaveLength(N);
    expect(new Set(fds).size).toBe(N);
    expect(listener.pending().queued).toBe(0);

    // The fds are the clients' connections, with what each client sent.
    const sockets = fds.map((fd) => opened.adoptFd(fd));
    const greetings = await readEach(sockets, 'client-0\n'.length);
    expect(greetings.sort()).toEqual(Array.from({ length: N }, (_, i) => `client-${i}\n`).sort());
    for (const client of clients) {
      expect(client.errors).toEqual([]);
      expect(client.closed).toBe(false);
    }
  });

  test('disarm after arm keeps the socket listening: new clients queue until armed again', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    const { port } = listener.address();
    const delivered: number[] = [];
    listener.arm((fds) => delivered.push(...fds.map((fd) => opened.fd(fd))));
    expect(listener.armed).toBe(true);
    opened.raw(port);
    await waitFor('first connection accepted', () => delivered.length === 1);

    listener.disarm();
    expect(listener.armed).toBe(false);
    const later = Array.from({ length: 3 }, () => opened.raw(port));
    await waitFor('later clients connected', () => later.every((client) => client.connected));
    await waitFor('queued === 3', () => listener.pending().queued === 3);
    expect(delivered).toHaveLength(1);

    const { fds } = await acceptExactly(listener, opened, 3);
    expect(fds).toHaveLength(3);
    expect(delivered).toHaveLength(1);
    expect(listener.pending().queued).toBe(0);
    expect(later.flatMap((client) => client.errors)).toEqual([]);
  });

  test('arming again replaces the callback', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    const { port } = listener.address();
    const first: number[] = [];
    const second: number[] = [];
    listener.arm((fds) => first.push(...fds.map((fd) => opened.fd(fd))));
    listener.arm((fds) => second.push(...fds.map((fd) => opened.fd(fd))));
    opened.raw(port);
    opened.raw(port);
    await waitFor('two connections accepted', () => second.length === 2);
    expect(first).toEqual([]);
  });

  test('200 queued clients arrive in batches of at most acceptBatch fds per callback', async () => {
    const N = 200;
    const { acceptBatch } = loadBinding();
    const listener = opened.listenSocket(await ListenSocket.open({ host: HOST, backlog: 511 }));
    // The queue holds min(backlog, somaxconn) + 1; past that, SYNs are dropped
    // and retried, which would only slow this test down.
    expect(listener.pending().backlog).toBeGreaterThanOrEqual(N);
    const { port } = listener.address();
    const clients = Array.from({ length: N }, () => opened.raw(port));
    await waitFor(`queued === ${N}`, () => listener.pending().queued === N, { tries: 250 });

    const { fds, batches } = await acceptExactly(listener, opened, N);
    expect(fds).toHaveLength(N);
    expect(new Set(fds).size).toBe(N);
    expect(batches.length).toBeLessThan(N);
    // Everything was queued before arm, so each readable event takes a full batch.
    expect(batches.map((batch) => batch.length)).toEqual(
      Array.from({ length: Math.ceil(N / acceptBatch) }, (_, i) => Math.min(acceptBatch, N - i * acceptBatch)),
    );
    expect(listener.pending().queued).toBe(0);

    for (const fd of fds) {
      fs.closeSync(fd);
      opened.release(fd);
    }
    await waitFor('clients saw the close', () => clients.every((client) => client.ended));
    expect(clients.flatMap((client) => client.errors)).toEqual([]);
  });
});
