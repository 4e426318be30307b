// HTTP CONNECT tunnels: a socket handed to 'connect' leaves the HTTP
// machinery, like one taken over by 'upgrade'. The HTTP drain must not take
// it for an idle keep-alive connection (ended after the quiet window,
// destroyed after the linger, truncating a proxied download); the drain hook
// gets it once, and without a hook it runs until the close deadline.
import http from 'node:http';
import net from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, protocolOf, sleep, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** A proxy whose 'connect' handler opens a tunnel to `target`. */
function proxyTo(target: number): { server: http.Server; tunnels: net.Socket[] } {
  const server = http.createServer((_request, response) => response.end('not a tunnel'));
  const tunnels: net.Socket[] = [];
  server.on('connect', (_request: http.IncomingMessage, socket: net.Socket) => {
    tunnels.push(socket);
    socket.on('error', () => {});
    const upstream = net.connect({ host: HOST, port: target }, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
  });
  return { server, tunnels };
}

/** An upstream that sends `chunks` one at a time, each when `next()` is called. */
async function upstreamServer(): Promise<{ port: number; send: (text: string) => void; finish: () => void; close: () => void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    send: (text) => sockets[0]!.write(text),
    finish: () => sockets[0]!.end(),
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

async function openTunnel(port: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(`CONNECT ${HOST}:1 HTTP/1.1\r\nHost: ${HOST}:1\r\n\r\n`);
  await client.until((c) => c.data.includes('\r\n\r\n'), 'the tunnel to open');
  expect(client.data).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
  client.data = '';
  return client;
}

test('a download through a CONNECT tunnel outlives the quiet window and the linger; the close waits for it', async () => {
  const upstream = await upstreamServer();
  try {
    const { server } = proxyTo(upstream.port);
    const listener = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 20, linger: 20 } }));
    const client = await openTunnel(listener.address().port);
    upstream.send('part 1;');
    await client.until((c) => c.data.includes('part 1;'), 'the first part');

    const closing = listener.close({ timeout: 600_000 });
    // Many quiet windows and lingers: an idle keep-alive connection would be gone by now.
    await sleep(300);
    upstream.send('part 2;');
    upstream.finish();
    await client.endAfterServer();
    const report = await opened.settled(listener, closing);
    expect(client.data).toBe('part 1;part 2;');
    expect(client.errors).toEqual([]);
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(protocolOf(report)).toEqual({ http: { closedAfterResponse: 0, endedIdle: 0 }, drainHooks: 0 });
  } finally {
    upstream.close();
  }
});

test('the drain hook gets the tunnel once when the drain starts', async () => {
  const upstream = await upstreamServer();
  try {
    const { server, tunnels } = proxyTo(upstream.port);
    const hooked: net.Socket[] = [];
    const listener = opened.listener(
      await listen(server, {
        host: HOST,
        http: { quietWindow: 20, linger: 20 },
        onDrain(socket) {
          hooked.push(socket);
          socket.end();
        },
      }),
    );
    const client = await openTunnel(listener.address().port);
    const closing = listener.close({ timeout: 600_000 });
    expect(hooked).toEqual(tunnels);
    await client.endAfterServer();
    const report = await opened.settled(listener, closing);
    expect(client.errors).toEqual([]);
    expect(protocolOf(report).drainHooks).toBe(1);
  } finally {
    upstream.close();
  }
});

test('a CONNECT to a server with no connect listener is still refused by Node (our watch adds none)', async () => {
  const server = http.createServer((_request, response) => response.end('x'));
  const listener = opened.listener(await listen(server, { host: HOST }));
  const client = opened.raw(listener.address().port);
  client.socket.write(`CONNECT ${HOST}:1 HTTP/1.1\r\nHost: ${HOST}:1\r\n\r\n`);
  await client.until((c) => c.closed, 'the connection to close');
  expect(client.data).toBe('');
});
