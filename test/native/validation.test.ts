import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, ListenerError } from '../../src/index.js';
import { Opened, acceptExactly, fdOf, fdTarget, openFds, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

type Expected = { type: typeof TypeError | typeof RangeError; code: string };
const TYPE: Expected = { type: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
const VALUE: Expected = { type: TypeError, code: 'ERR_INVALID_ARG_VALUE' };
const RANGE: Expected = { type: RangeError, code: 'ERR_OUT_OF_RANGE' };

async function openError(options: unknown): Promise<unknown> {
  return ListenSocket.open(options as never).then(
    (unexpected) => {
      opened.listenSocket(unexpected);
      throw new Error(`open(${JSON.stringify(options)}) succeeded`);
    },
    (error: unknown) => error,
  );
}

/** Runs adopt() and checks it threw and left no new fd behind (adopt is synchronous). */
function adoptError(source: unknown): unknown {
  const before = openFds();
  let caught: unknown;
  try {
    opened.listenSocket(ListenSocket.adopt(source as never));
  } catch (error) {
    caught = error;
  }
  expect(openFds()).toEqual(before);
  if (caught === undefined) throw new Error('adopt() succeeded');
  return caught;
}

function listen(server: net.Server, ...args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    (server.listen as (...a: unknown[]) => void)(...args, () => resolve());
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('open() rejects bad options with typed errors', () => {
  test.each<[string, unknown, Expected]>([
    ['port 65536', { port: 65536 }, RANGE],
    ['port -1', { port: -1 }, RANGE],
    ['port 1.5', { port: 1.5 }, RANGE],
    ['port NaN', { port: NaN }, RANGE],
    ['port Infinity', { port: Infinity }, RANGE],
    ["port 'abc'", { port: 'abc' }, TYPE],
    ["port '80'", { port: '80' }, TYPE],
    ['backlog -1', { backlog: -1 }, RANGE],
    ['backlog NaN', { backlog: NaN }, RANGE],
    ['backlog 2.5', { backlog: 2.5 }, RANGE],
    ['backlog 2**31', { backlog: 2 ** 31 }, RANGE],
    ["backlog '5'", { backlog: '5' }, TYPE],
    ['family 5', { family: 5 }, VALUE],
    ["family '4'", { family: '4' }, VALUE],
    ['host 42', { host: 42 }, TYPE],
    ['host null', { host: null }, TYPE],
    ["host ''", { host: '' }, VALUE],
    ['host 127.0.0.1 with family 6', { host: '127.0.0.1', family: 6 }, VALUE],
    ['host ::1 with family 4', { host: '::1', family: 4 }, VALUE],
    ["reusePort 'yes'", { reusePort: 'yes' }, TYPE],
    ['ipv6Only 1', { ipv6Only: 1 }, TYPE],
    ['options null', null, TYPE],
    ["options 'x'", 'x', TYPE],
    ['options []', [], TYPE],
  ])('%s', async (_name, options, expected) => {
    const error = await openError(options);
    expect(error).toBeInstanceOf(expected.type);
    expect(error).toMatchObject({ code: expected.code });
    expect((error as Error).message).not.toBe('');
  });

  test('the message names the option and what was received', async () => {
    const error = (await openError({ port: 65536 })) as Error;
    expect(error.message).toContain('options.port');
    expect(error.message).toContain('65536');
    expect(((await openError({ host: 42 })) as Error).message).toContain('options.host');
  });

  test('an address the system cannot bind is a system error, not an argument error', async () => {
    // TEST-NET-1 is not configured on any local interface.
    await expect(ListenSocket.open({ host: '192.0.2.1' })).rejects.toMatchObject({
      code: 'EADDRNOTAVAIL',
      syscall: 'bind',
      address: '192.0.2.1',
    });
  });

  test('other platforms get ERR_UNSUPPORTED_PLATFORM', async () => {
    const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { ...platform, value: 'darwin' });
    try {
      const error = await openError({ host: '127.0.0.1' });
      expect(error).toBeInstanceOf(ListenerError);
      expect(error).toMatchObject({ code: 'ERR_UNSUPPORTED_PLATFORM' });
      expect(() => ListenSocket.adopt(0)).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED_PLATFORM' }));
    } finally {
      Object.defineProperty(process, 'platform', platform);
    }
  });
});

describe('pending(), gate() and arm() check their arguments', () => {
  test.each<[string, (listener: ListenSocket) => unknown, Expected]>([
    ['pending(null)', (listener) => listener.pending(null as never), TYPE],
    ["pending({ handshakes: 'yes' })", (listener) => listener.pending({ handshakes: 'yes' as never }), TYPE],
    ["gate('on')", (listener) => listener.gate('on' as never), TYPE],
    ['gate()', (listener) => listener.gate(undefined as never), TYPE],
    ["arm('x')", (listener) => listener.arm('x' as never), TYPE],
  ])('%s', async (_name, call, expected) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    let caught: unknown;
    try {
      call(listener);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(expected.type);
    expect(caught).toMatchObject({ code: expected.code });
    expect(listener.armed).toBe(false);
  });
});

describe('adopt() refuses what is not a listening TCP socket, and never leaks an fd', () => {
  test.each<[string, unknown, Expected]>([
    ["'3'", '3', TYPE],
    ['an object', {}, TYPE],
    ['null', null, TYPE],
    ['-1', -1, RANGE],
    ['1.5', 1.5, RANGE],
  ])('fd %s', (_name, source, expected) => {
    const error = adoptError(source);
    expect(error).toBeInstanceOf(expected.type);
    expect(error).toMatchObject({ code: expected.code });
  });

  test('a regular file', () => {
    const fd = fs.openSync(process.execPath, 'r');
    try {
      const error = adoptError(fd);
      expect(error).toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', cause: { code: 'ENOTSOCK' } });
      expect((error as Error).message).toContain('must be a socket');
      expect(fs.fstatSync(fd).isFile()).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('a closed fd', () => {
    const fd = fs.openSync(process.execPath, 'r');
    fs.closeSync(fd);
    const error = adoptError(fd);
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', cause: { code: 'EBADF', syscall: 'fcntl' } });
    expect((error as Error).message).toContain('must be an open file descriptor');
  });

  test('a UDP socket', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    try {
      // dgram.Socket#_handle is deprecated (DEP0112); the handle sits in its state object.
      const state = Object.getOwnPropertySymbols(udp)
        .map((symbol) => (udp as unknown as Record<symbol, { handle?: { fd?: number } }>)[symbol])
        .find((value) => typeof value?.handle?.fd === 'number');
      const fd = state!.handle!.fd!;
      const target = fdTarget(fd);
      expect(target).toMatch(/^socket:/);
      const error = adoptError(fd);
      expect(error).toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect((error as Error).message).toContain('must be a TCP socket');
      expect(fdTarget(fd)).toBe(target);
    } finally {
      await new Promise<void>((resolve) => udp.close(resolve));
    }
  });

  test('a connected, not listening, TCP socket (both ends)', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const client = opened.raw(listener.address().port);
    const { fds } = await acceptExactly(listener, opened, 1);
    await waitFor('client connected', () => client.connected);
    const clientFd = fdOf(client.socket);
    for (const fd of [clientFd, fds[0]!]) {
      const target = fdTarget(fd);
      const error = adoptError(fd);
      expect(error).toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect((error as Error).message).toContain('must be a listening socket');
      expect(fdTarget(fd)).toBe(target);
    }
    expect(client.errors).toEqual([]);
  });

  test('a listening Unix socket server, and a net.Server that is not listening', async () => {
    const dir = opened.tempDir('gl-unix-');
    const server = net.createServer();
    await listen(server, path.join(dir, 'socket'));
    try {
      const error = adoptError(server);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect((error as Error).message).toContain('must be a TCP socket');
    } finally {
      await closeServer(server);
    }
    const idle = net.createServer();
    const error = adoptError(idle);
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('adopt() of a listening socket', () => {
  test('a listening net.Server: same port, and closing the adopted copy leaves the server listening', async () => {
    const server = net.createServer((socket) => socket.end('hello'));
    await listen(server, 0, '127.0.0.1');
    try {
      const { port } = server.address() as net.AddressInfo;
      const adopted = opened.listenSocket(ListenSocket.adopt(server));
      expect(adopted.address()).toEqual({ address: '127.0.0.1', family: 'IPv4', port });
      expect(adopted.fd).not.toBe(fdOf(server));
      expect(fdTarget(adopted.fd)).toBe(fdTarget(fdOf(server)));
      expect(adopted.backlog).toBe(adopted.pending().backlog);
      adopted.close();

      const greeting = await new Promise<string>((resolve, reject) => {
        const socket = opened.track(net.connect(port, '127.0.0.1'));
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      expect(greeting).toBe('hello');
    } finally {
      await closeServer(server);
    }
  });

  test('an fd number; after server.close() the queue lives on in the adopted socket', async () => {
    const server = net.createServer();
    await listen(server, 0, '::1');
    const { port } = server.address() as net.AddressInfo;
    const adopted = opened.listenSocket(
      ListenSocket.adopt(fdOf(server)),
    );
    expect(adopted.address()).toEqual({ address: '::1', family: 'IPv6', port });
    await closeServer(server);

    const clients = Array.from({ length: 4 }, () => opened.raw(port, { host: '::1' }));
    await waitFor('clients connected', () => clients.every((client) => client.connected));
    await waitFor('queued === 4', () => adopted.pending().queued === 4);
    const { fds } = await acceptExactly(adopted, opened, 4);
    expect(fds).toHaveLength(4);
    expect(clients.flatMap((client) => client.errors)).toEqual([]);
  });
});
