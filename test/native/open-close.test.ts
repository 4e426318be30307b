import net from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Opened, acceptExactly, fdTarget, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe('open and close', () => {
  test.each([
    ['127.0.0.1', 'IPv4'],
    ['::1', 'IPv6'],
  ] as const)('on %s: port 0 gives an ephemeral port, close releases it', async (host, family) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host, port: 0 }));
    const address = listener.address();
    expect(address).toEqual({ address: host, family, port: expect.any(Number) });
    expect(address.port).toBeGreaterThan(0);
    expect(address.port).toBeLessThanOrEqual(65535);
    const fd = listener.fd;
    expect(fdTarget(fd)).toMatch(/^socket:\[\d+\]$/);
    expect(listener.closed).toBe(false);
    expect(await opened.connectOutcome(address.port, host)).toBe('connected');

    listener.close();
    expect(listener.closed).toBe(true);
    expect(listener.fd).toBe(-1);
    expect(await opened.connectOutcome(address.port, host)).toBe('ECONNREFUSED');
  });

  test('an explicit port binds that port again after close (SO_REUSEADDR)', async () => {
    const first = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = first.address();
    // A connection that lived on the port leaves a TIME_WAIT behind.
    const client = opened.raw(port);
    const { fds } = await acceptExactly(first, opened, 1);
    await waitFor('client connected', () => client.connected);
    opened.adoptFd(fds[0]!).destroy();
    await waitFor('client closed', () => client.closed);
    first.close();

    const second = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', port }));
    expect(second.address().port).toBe(port);
  });

  test('the default host is dual-stack "::", and ipv6Only refuses IPv4 clients', async () => {
    const dual = opened.listenSocket(await ListenSocket.open());
    expect(dual.address()).toMatchObject({ address: '::', family: 'IPv6' });
    expect(await opened.connectOutcome(dual.address().port, '127.0.0.1')).toBe('connected');

    const v6only = opened.listenSocket(await ListenSocket.open({ host: '::', ipv6Only: true }));
    expect(await opened.connectOutcome(v6only.address().port, '::1')).toBe('connected');
    expect(await opened.connectOutcome(v6only.address().port, '127.0.0.1')).toBe('ECONNREFUSED');
  });

  test('family 4 with no host binds 0.0.0.0', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ family: 4 }));
    expect(listener.address()).toMatchObject({ address: '0.0.0.0', family: 'IPv4' });
  });

  test('a host name is resolved in TypeScript (dns.lookup)', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: 'localhost', family: 4 }));
    expect(listener.address()).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
  });

  test('the requested backlog is the queue cap the kernel reports', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', backlog: 7 }));
    expect(listener.backlog).toBe(7);
    expect(listener.pending()).toEqual({ queued: 0, backlog: 7 });
  });

  test.each(['127.0.0.1', '::1'] as const)('EADDRINUSE on %s carries code, errno, syscall, address and port', async (host) => {
    const first = opened.listenSocket(await ListenSocket.open({ host }));
    const { port } = first.address();
    const error = await ListenSocket.open({ host, port }).then(
      (unexpected) => {
        opened.listenSocket(unexpected);
        throw new Error('the second open succeeded');
      },
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      code: 'EADDRINUSE',
      errno: -os.constants.errno.EADDRINUSE,
      syscall: 'bind',
      address: host,
      port,
    });
    expect((error as Error).message).toContain('EADDRINUSE');
  });

  test('EADDRINUSE against a port a net.Server holds, same errno as Node reports', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const nodeError = await new Promise<NodeJS.ErrnoException>((resolve) => {
        const other = net.createServer();
        other.once('error', resolve);
        other.listen(port, '127.0.0.1');
      });
      await expect(ListenSocket.open({ host: '127.0.0.1', port })).rejects.toMatchObject({
        code: nodeError.code,
        errno: nodeError.errno,
        syscall: 'bind',
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('two reusePort listeners share a port and together accept every client', async () => {
    const first = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', reusePort: true }));
    const { port } = first.address();
    const second = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', port, reusePort: true }));
    expect(second.address().port).toBe(port);
    await expect(ListenSocket.open({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'EADDRINUSE' });

    const clients = Array.from({ length: 16 }, () => opened.raw(port));
    const delivered: number[] = [];
    for (const listener of [first, second]) {
      listener.arm((fds) => delivered.push(...fds.map((fd) => opened.fd(fd))));
    }
    await waitFor('16 connections over both listeners', () => delivered.length === 16);
    await waitFor('clients connected', () => clients.every((client) => client.connected));
    expect(new Set(delivered).size).toBe(16);
    expect(clients.flatMap((client) => client.errors)).toEqual([]);
  });

  test.each(['an ephemeral', 'an explicit'] as const)(
    'shutdown() refuses new clients with the fd still open; listen() re-arms the same socket on the same port (%s port)',
    async (kind) => {
      let requested = 0;
      if (kind === 'an explicit') {
        const probe = await ListenSocket.open({ host: '127.0.0.1' });
        requested = probe.address().port;
        probe.close();
      }
      const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', port: requested }));
      const { port } = listener.address();
      const target = fdTarget(listener.fd);
      listener.shutdown();
      expect(fdTarget(listener.fd)).toBe(target);
      expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');

      // The kernel unbinds a port it picked itself when shutdown() moves the
      // socket to CLOSE; listen() binds it again rather than take a new one.
      listener.listen();
      expect(listener.address()).toEqual({ address: '127.0.0.1', family: 'IPv4', port });
      const client = opened.raw(port);
      const { fds } = await acceptExactly(listener, opened, 1);
      expect(fds).toHaveLength(1);
      await waitFor('client connected', () => client.connected);
      expect(client.errors).toEqual([]);
    },
  );

  test('listen() after shutdown() fails with EADDRINUSE if the freed ephemeral port was taken meanwhile', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    listener.shutdown();
    const taker = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', port }));
    expect(taker.address().port).toBe(port);
    let caught: unknown;
    try {
      listener.listen();
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', address: '127.0.0.1', port });
  });
});
