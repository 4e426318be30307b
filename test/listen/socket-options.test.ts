// The server options lib/net.js `onconnection` applies to each accepted
// socket — noDelay, keepAlive, keepAliveInitialDelay, allowHalfOpen,
// pauseOnConnect, highWaterMark — must reach sockets fed by the listener.
// Each case runs the same server under server.listen() and listen(server) and
// compares what the kernel says about the server-side socket (getsockopt in a
// python3 child that inherits the fd) and the stream's own state.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, certificate, fdOf, nextEvent, nodeListen, sleep, waitFor } from '../helpers/kit.js';
import { tcpOptions, type TcpOptions } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

type Mode = 'server.listen()' | 'listen(server)';

async function start(mode: Mode, server: net.Server): Promise<{ port: number; stop(): Promise<void> }> {
  if (mode === 'server.listen()') {
    const port = await nodeListen(opened.server(server));
    return {
      port,
      stop: async () => {
        (server as Partial<http.Server>).closeAllConnections?.();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }
  const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
  return {
    port: listener.address().port,
    stop: async () => {
      await listener.close({ timeout: 0, forceTimeout: 0 });
    },
  };
}

interface Observed extends TcpOptions {
  readableHighWaterMark: number;
  writableHighWaterMark: number;
}

/** Connects once and reads the accepted socket's options on the server side. */
async function observe(mode: Mode, server: net.Server): Promise<Observed> {
  const observed = new Promise<Observed>((resolve, reject) => {
    server.once('connection', (socket: net.Socket) => {
      tcpOptions(fdOf(socket)).then(
        (options) =>
          resolve({
            ...options,
            readableHighWaterMark: socket.readableHighWaterMark,
            writableHighWaterMark: socket.writableHighWaterMark,
          }),
        reject,
      );
    });
  });
  const { port, stop } = await start(mode, server);
  const client = opened.raw(port);
  try {
    return await observed;
  } finally {
    client.socket.destroy();
    await stop();
  }
}

interface Case {
  name: string;
  make(): net.Server;
  expected: Partial<Observed>;
}

const cases: Case[] = [
  { name: 'net, defaults', make: () => net.createServer(), expected: { nodelay: 0, keepalive: 0 } },
  { name: 'net, noDelay', make: () => net.createServer({ noDelay: true }), expected: { nodelay: 1 } },
  {
    name: 'net, keepAlive + keepAliveInitialDelay 7000',
    make: () => net.createServer({ keepAlive: true, keepAliveInitialDelay: 7000 }),
    expected: { keepalive: 1, keepidle: 7 },
  },
  { name: 'net, keepAlive without delay', make: () => net.createServer({ keepAlive: true }), expected: { keepalive: 1 } },
  {
    name: 'net, highWaterMark 4096',
    make: () => net.createServer({ highWaterMark: 4096 }),
    expected: { readableHighWaterMark: 4096, writableHighWaterMark: 4096 },
  },
  { name: 'http, defaults (noDelay on)', make: () => http.createServer(), expected: { nodelay: 1, keepalive: 0 } },
  { name: 'http, noDelay off', make: () => http.createServer({ noDelay: false }), expected: { nodelay: 0 } },
  {
    // The listener's sockets inherit TCP_NODELAY from the listening socket: the
    // user's setNoDelay(false) must still reach the kernel.
    name: "http, the 'connection' handler turns noDelay off",
    make: () => http.createServer().on('connection', (socket: net.Socket) => socket.setNoDelay(false)),
    expected: { nodelay: 0 },
  },
  {
    name: 'http, keepAlive + keepAliveInitialDelay 5000',
    make: () => http.createServer({ keepAlive: true, keepAliveInitialDelay: 5000 }),
    expected: { keepalive: 1, keepidle: 5 },
  },
  {
    name: 'tls, noDelay + keepAlive + keepAliveInitialDelay 3000',
    make: () => tls.createServer({ ...certificate(), noDelay: true, keepAlive: true, keepAliveInitialDelay: 3000 }),
    expected: { nodelay: 1, keepalive: 1, keepidle: 3 },
  },
];

describe('socket options of accepted connections', () => {
  test.each(cases)('$name: as after server.listen()', async ({ make, expected }) => {
    const reference = await observe('server.listen()', make());
    const fed = await observe('listen(server)', make());
    expect(reference).toMatchObject(expected);
    expect(fed).toEqual(reference);
  });
});

describe('TCP_NODELAY set once on the listening socket follows the server fed', () => {
  async function nodelayOfNext(server: net.Server, port: number): Promise<number> {
    const seen = new Promise<number>((resolve, reject) => {
      server.once('connection', (socket: net.Socket) => tcpOptions(fdOf(socket)).then((options) => resolve(options.nodelay), reject));
    });
    const client = opened.raw(port);
    try {
      return await seen;
    } finally {
      client.socket.destroy();
    }
  }

  test('replace() from http (noDelay on) to net (off) and back', async () => {
    const first = http.createServer();
    const listener = opened.listener(await listen(first, { host: HOST, port: 0 }));
    const { port } = listener.address();
    expect(await nodelayOfNext(first, port)).toBe(1);
    const plain = net.createServer();
    await listener.replace(plain, { timeout: 0, forceTimeout: 0 });
    expect(await nodelayOfNext(plain, port)).toBe(0);
    const again = http.createServer();
    await listener.replace(again, { timeout: 0, forceTimeout: 0 });
    expect(await nodelayOfNext(again, port)).toBe(1);
    await listener.close({ timeout: 0, forceTimeout: 0 });
  });

  test('a shared socket is left at the kernel default: each connection sets it, and can clear it', async () => {
    const server = http.createServer();
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();
    listener.share();
    expect(await nodelayOfNext(server, port)).toBe(1);
    server.once('connection', (socket: net.Socket) => socket.setNoDelay(false));
    expect(await nodelayOfNext(server, port)).toBe(0);
    const plain = net.createServer();
    await listener.replace(plain, { timeout: 0, forceTimeout: 0 });
    expect(await nodelayOfNext(plain, port)).toBe(0);
    listener.share(false);
    await listener.close({ timeout: 0, forceTimeout: 0 });
  });
});

describe('server blockList (Node >= 22.13; older Node ignores the option)', () => {
  test('a blocked peer is closed before the server sees it, exactly as after server.listen()', async () => {
    const outcome = async (mode: Mode): Promise<{ data: string; connections: number; enforced: boolean }> => {
      const blockList = new net.BlockList();
      blockList.addAddress(HOST);
      let seen = 0;
      const server = net.createServer({ blockList } as net.ServerOpts, (socket) => {
        seen++;
        socket.end('served');
      });
      const { port, stop } = await start(mode, server);
      const client = opened.raw(port);
      await waitFor('the client to be closed', () => client.closed);
      await stop();
      return { data: client.data, connections: seen, enforced: (server as { blockList?: unknown }).blockList !== undefined };
    };
    const reference = await outcome('server.listen()');
    const fed = await outcome('listen(server)');
    expect(fed).toEqual(reference);
    expect(reference).toEqual(
      reference.enforced ? { data: '', connections: 0, enforced: true } : { data: 'served', connections: 1, enforced: false },
    );
  });
});

describe.each<Mode>(['server.listen()', 'listen(server)'])('%s', (mode) => {
  test.each([true, false])('allowHalfOpen %s', async (allowHalfOpen) => {
    const seen: { allowHalfOpen: boolean; endedAfterPeerEnd: boolean }[] = [];
    const server = net.createServer({ allowHalfOpen }, (socket) => {
      socket.resume();
      // Without allowHalfOpen, the stream ends its side when the peer's FIN arrives.
      socket.on('end', () =>
        setImmediate(() => {
          seen.push({ allowHalfOpen: socket.allowHalfOpen, endedAfterPeerEnd: socket.writableEnded });
          if (!socket.writableEnded) socket.end('after-end');
        }),
      );
    });
    const { port, stop } = await start(mode, server);
    const client = opened.raw(port);
    client.socket.end('bye');
    await waitFor('the client to close', () => client.closed);

    expect(seen).toEqual([{ allowHalfOpen, endedAfterPeerEnd: !allowHalfOpen }]);
    expect(client.errors).toEqual([]);
    expect(client.data).toBe(allowHalfOpen ? 'after-end' : '');
    await stop();
  });

  test('pauseOnConnect: nothing is read until the server resumes the socket', async () => {
    let accepted: net.Socket | undefined;
    let flowingAtConnect: boolean | null | undefined;
    let received = '';
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      accepted = socket;
      flowingAtConnect = socket.readableFlowing;
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
    });
    const { port, stop } = await start(mode, server);
    const client = opened.raw(port);
    await waitFor('the client to connect', () => client.connected);
    await new Promise<void>((resolve) => client.socket.write('hello', () => resolve()));
    await waitFor('the server to get the connection', () => accepted !== undefined);
    // The bytes are in the server's receive buffer by now; a paused socket leaves them there.
    await sleep(100);
    expect(flowingAtConnect).toBe(false);
    expect(received).toBe('');
    expect(accepted!.bytesRead).toBe(0);

    accepted!.resume();
    await waitFor('the data after resume()', () => received === 'hello');
    client.socket.end();
    await nextEvent(client.socket, 'close');
    await stop();
  });
});
