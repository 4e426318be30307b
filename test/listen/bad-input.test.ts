// Bad input to listen()/adopt() and calls on a closed listener: typed errors
// with stable codes, and nothing claimed or left open after a failure.
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { adopt, listen, type ListenOptions } from '../../src/index.js';
import { HOST, Opened, nextEvent, nodeListen, sleep } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** After a failed call the server must be free: listen() works and closes. */
async function expectFree(server: net.Server): Promise<void> {
  expect(server.listening).toBe(false);
  const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
  expect(server.listening).toBe(true);
  await listener.close();
  expect(server.listening).toBe(false);
}

describe('not a server', () => {
  test.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', '127.0.0.1:80'],
    ['a plain object', { listen() {} }],
    ['an EventEmitter', new EventEmitter()],
    ['a net.Socket', new net.Socket()],
  ])('%s: listen() and adopt() throw TypeError ERR_INVALID_ARG_TYPE', async (_name, value) => {
    const error = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
    await expect(listen(value as net.Server)).rejects.toMatchObject(error);
    expect(() => adopt(value as net.Server)).toThrow(expect.objectContaining(error));
  });
});

describe('a server that already listens', () => {
  test('listened by Node: listen() throws ERR_SERVER_ALREADY_LISTEN and points to adopt()', async () => {
    const server = opened.server(net.createServer());
    await nodeListen(server);
    const error = await listen(server, { host: HOST, port: 0 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'ListenerError', code: 'ERR_SERVER_ALREADY_LISTEN' });
    expect((error as Error).message).toContain('adopt');
    // Node's own listening socket is untouched.
    expect(server.listening).toBe(true);
  });

  test('listen() twice, one after the other: ERR_SERVER_ALREADY_LISTEN; the first keeps working', async () => {
    const server = net.createServer((socket) => socket.end('first'));
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    await expect(listen(server, { host: HOST, port: 0 })).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
    await expect(listen(server, { fd: listener.fd })).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
    expect(() => adopt(server)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_ALREADY_LISTEN' }));
    const client = opened.raw(listener.address().port);
    await nextEvent(client.socket, 'close');
    expect(client.data).toBe('first');
    await listener.close();
  });

  test('listen() twice concurrently, before the first resolves: the second rejects, one listener opens', async () => {
    const server = net.createServer();
    let listening = 0;
    server.on('listening', () => listening++);
    const results = await Promise.allSettled([
      listen(server, { host: HOST, port: 0 }),
      listen(server, { host: HOST, port: 0 }),
    ]);
    expect(results[0]!.status).toBe('fulfilled');
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'ERR_SERVER_ALREADY_LISTEN' } });
    expect(listening).toBe(1);
    const listener = opened.listener((results[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof listen>>>).value);
    await listener.close();
  });

  test("server.listen() finishes while listen(server) is resolving its host: listen() rejects, Node's socket is kept", async () => {
    const server = opened.server(net.createServer((socket) => socket.end('node')));
    // dns.lookup of a name answers from the threadpool; Node's own listen on an
    // IP literal sets its handle on the next tick, first.
    const pending = listen(server, { host: 'localhost', family: 4, port: 0 });
    server.listen(0, HOST);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
    if (!server.listening) await nextEvent(server, 'listening');
    const client = opened.raw((server.address() as net.AddressInfo).port);
    await nextEvent(client.socket, 'close');
    expect(client.data).toBe('node');
  });

  test('server.listen() still resolving its host when listen(server) finishes: Node\'s listen is dropped', async () => {
    const server = net.createServer((socket) => socket.end('listener'));
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    let listenCallbacks = 0;
    server.listen(0, 'localhost', () => listenCallbacks++);
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    // Let Node's lookup answer: its listen must not touch the listener's handle.
    await new Promise<void>((resolve) => dns.lookup('localhost', () => setImmediate(resolve)));
    await sleep(50);
    expect(errors).toEqual([]);
    expect(server.address()).toEqual(listener.address());
    const client = opened.raw(listener.address().port);
    await nextEvent(client.socket, 'close');
    expect(client.data).toBe('listener');
    // The callback ran once, on the listener's 'listening'.
    expect(listenCallbacks).toBe(1);
    await listener.close();
    expect(server.listening).toBe(false);
  });

  test("server.listen() after listen(server) throws Node's ERR_SERVER_ALREADY_LISTEN", async () => {
    const server = http.createServer();
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    expect(() => server.listen(0, HOST)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_ALREADY_LISTEN' }));
    expect(server.address()).toEqual(listener.address());
    await listener.close();
  });

  test('adopt(): a server that is not listening → ERR_SERVER_NOT_LISTENING; adopted twice → ERR_SERVER_ALREADY_LISTEN', async () => {
    const idle = net.createServer();
    expect(() => adopt(idle)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_NOT_LISTENING' }));
    await expectFree(idle);

    const server = opened.server(net.createServer());
    await nodeListen(server);
    const listener = opened.listener(adopt(server));
    expect(() => adopt(server)).toThrow(expect.objectContaining({ code: 'ERR_SERVER_ALREADY_LISTEN' }));
    await expect(listen(server, { host: HOST, port: 0 })).rejects.toMatchObject({ code: 'ERR_SERVER_ALREADY_LISTEN' });
    await listener.close();
  });

  test('after its listener closed, the server can listen again (listen() or server.listen())', async () => {
    const server = net.createServer((socket) => socket.end('again'));
    await expectFree(server);
    await expectFree(server);
    opened.server(server);
    const port = await nodeListen(server);
    const client = opened.raw(port);
    await nextEvent(client.socket, 'close');
    expect(client.data).toBe('again');
  });
});

describe('invalid options', () => {
  const cases: [string, unknown, { name: string; code: string }][] = [
    ['options not an object', 'port=80', { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['port 65536', { port: 65536 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['port -1', { port: -1 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['port 1.5', { port: 1.5 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['port "80"', { port: '80' }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['backlog -1', { backlog: -1 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['reusePort "yes"', { reusePort: 'yes' }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['ipv6Only 1', { ipv6Only: 1 }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['host 42', { host: 42 }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['host ""', { host: '' }, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }],
    ['family 5', { family: 5 }, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }],
    ['IPv4 host with family 6', { host: HOST, family: 6 }, { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }],
    ['signal not an AbortSignal', { signal: { aborted: false } }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
    ['fd -1', { fd: -1 }, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }],
    ['onDrain not a function', { onDrain: 'end' }, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }],
  ];

  test.each(cases)('%s', async (_name, options, error) => {
    const server = net.createServer();
    const base = typeof options === 'object' && options !== null && !('fd' in options) ? { host: HOST } : {};
    const merged = typeof options === 'object' && options !== null ? { ...base, ...options } : options;
    await expect(listen(server, merged as ListenOptions)).rejects.toMatchObject(error);
    await expectFree(server);
  });

  test('fd that is not a listening TCP socket → ERR_INVALID_ARG_VALUE', async () => {
    const server = net.createServer();
    const file = fs.openSync('/dev/null', 'r');
    try {
      await expect(listen(server, { fd: file })).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    } finally {
      fs.closeSync(file);
    }
    await expectFree(server);
  });

  test('a port in use → EADDRINUSE with Node\'s error shape', async () => {
    const holder = opened.server(net.createServer());
    const port = await nodeListen(holder);
    const server = net.createServer();
    const error = await listen(server, { host: HOST, port }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: expect.any(Number), syscall: expect.any(String) });
    await expectFree(server);
  });
});

describe('calls on a closed listener', () => {
  test('pause(), resume(), address() and pending() throw ERR_LISTENER_CLOSED', async () => {
    const listener = opened.listener(await listen(net.createServer(), { host: HOST, port: 0 }));
    await listener.close();
    expect(listener.state).toBe('closed');
    for (const call of [
      () => listener.pause(),
      () => listener.resume(),
      () => listener.address(),
      () => listener.pending(),
      () => listener.pending({ handshakes: true }),
    ]) {
      expect(call).toThrow(expect.objectContaining({ name: 'ListenerError', code: 'ERR_LISTENER_CLOSED' }));
    }
  });
});
