// Issue 5, upgraded sockets: a socket taken over by 'upgrade' leaves the HTTP
// machinery; the `onDrain` hook gets it once when the drain starts, and
// without a hook it runs until the deadline and is then ended gently. The
// drain's own 'upgrade' listener must never make Node treat an `Upgrade:`
// request as an upgrade on a server without one of the user's.
import http from 'node:http';
import type net from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, protocolOf, rawGet, within, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const UPGRADE_REQUEST = rawGet('/', 'Upgrade: test\r\nConnection: Upgrade\r\n');
const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n';

/**
 * A server whose 'upgrade' handler switches to an echo protocol (or, with
 * `echo: false`, to one that never reads); `upgraded` holds the server-side
 * sockets.
 */
function upgrades(server: http.Server, { echo = true } = {}) {
  const upgraded: net.Socket[] = [];
  server.on('upgrade', (_request: http.IncomingMessage, socket: net.Socket) => {
    socket.write(SWITCHING);
    if (echo) socket.on('data', (chunk: Buffer) => socket.write(chunk));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    upgraded.push(socket);
  });
  return { upgraded };
}

/** A raw client that sends the upgrade request and waits for the 101. */
async function upgradedClient(port: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(UPGRADE_REQUEST);
  await client.until((c) => c.data.includes('\r\n\r\n'), 'the 101 response');
  expect(client.data).toBe(SWITCHING);
  client.data = '';
  return client;
}

test('the drain hook gets the upgraded socket exactly once when the drain starts; HTTP connections are not hooked', async () => {
  const server = http.createServer((_request, response) => response.end('ok'));
  const hooked: net.Socket[] = [];
  const listener = opened.listener(
    await listen(server, {
      host: HOST,
      http: { quietWindow: 50 },
      onDrain(socket) {
        hooked.push(socket);
        // The application's own goodbye, then FIN.
        socket.end('bye');
      },
    }),
  );
  const { upgraded } = upgrades(server);
  const port = listener.address().port;
  const client = await upgradedClient(port);
  const plain = opened.raw(port);
  plain.socket.write(rawGet());
  await plain.response();

  const closing = listener.close({ timeout: 600_000 });
  expect(hooked).toEqual(upgraded);
  await client.endAfterServer();
  await plain.endAfterServer();
  const report = await opened.settled(listener, closing);

  expect(hooked).toHaveLength(1);
  expect(client.data).toBe('bye');
  expect(client.errors).toEqual([]);
  expect(plain.errors).toEqual([]);
  expect(protocolOf(report)).toEqual({ http: { closedAfterResponse: 0, endedIdle: 1 }, drainHooks: 1 });
  expect(report.ended + report.destroyed).toBe(0);
});

test('a socket upgraded while draining gets the hook at once', async () => {
  const server = http.createServer();
  const hooked: net.Socket[] = [];
  const listener = opened.listener(
    await listen(server, { host: HOST, http: { quietWindow: 600_000 }, onDrain: (socket) => hooked.push(socket) }),
  );
  const { upgraded } = upgrades(server);
  // Connected before the close, upgraded after it.
  const client = opened.raw(listener.address().port);
  await within(new Promise((resolve) => client.socket.once('connect', resolve)), 'the connection');
  const closing = listener.close({ timeout: 600_000 });
  client.socket.write(UPGRADE_REQUEST);
  await client.until((c) => c.data.includes('\r\n\r\n'), 'the 101 response');

  expect(hooked).toEqual(upgraded);
  expect(hooked).toHaveLength(1);
  hooked[0]!.end();
  await client.endAfterServer();
  const report = await opened.settled(listener, closing);
  expect(protocolOf(report).drainHooks).toBe(1);
});

test('without a hook an upgraded socket keeps working while draining, and leaves when its client does', async () => {
  const server = http.createServer();
  upgrades(server);
  const listener = opened.listener(await listen(server, { host: HOST }));
  const client = await upgradedClient(listener.address().port);

  const closing = listener.close({ timeout: 600_000 });
  client.socket.write('ping');
  await client.until((c) => c.data === 'ping', 'the echo');
  await client.endFirst();
  const report = await opened.settled(listener, closing);

  expect(client.errors).toEqual([]);
  expect(report).toMatchObject({ served: 1, ended: 0, destroyed: 0 });
  expect(protocolOf(report).drainHooks).toBe(0);
});

test('without a hook an upgraded socket is ended gently at the deadline: FIN, not a reset', async () => {
  const server = http.createServer();
  upgrades(server, { echo: false });
  const listener = opened.listener(await listen(server, { host: HOST }));
  const client = await upgradedClient(listener.address().port);
  // Unread by the server's protocol when the deadline comes: the gentle end
  // reads it away instead of closing over it (which would send RST).
  client.socket.write('x'.repeat(64 * 1024));

  const closing = listener.close({ timeout: 0, forceTimeout: 600_000 });
  await client.endAfterServer();
  const report = await opened.settled(listener, closing);

  expect(client.ended).toBe(true);
  expect(client.errors).toEqual([]);
  expect(report).toMatchObject({ ended: 1, destroyed: 0 });
});

test("a server without an 'upgrade' listener answers a request with an Upgrade header as a normal request", async () => {
  const server = http.createServer((request, response) => response.end(`normal ${request.headers.upgrade}`));
  const listener = opened.listener(await listen(server, { host: HOST, onDrain: () => {} }));
  const port = listener.address().port;
  const ask = async (): Promise<string> => {
    const client = opened.raw(port);
    client.socket.write(UPGRADE_REQUEST);
    const response = await client.response();
    await client.endFirst();
    return `${response.status} ${response.body}`;
  };

  expect(server.listenerCount('upgrade')).toBe(0);
  expect(await ask()).toBe('200 normal test');
  // A user's listener added and removed again leaves none behind.
  const onUpgrade = (): void => {};
  server.on('upgrade', onUpgrade);
  server.off('upgrade', onUpgrade);
  await Promise.resolve();
  expect(server.listenerCount('upgrade')).toBe(0);
  expect(await ask()).toBe('200 normal test');

  const report = await opened.close(listener, { timeout: 600_000 });
  expect(protocolOf(report).drainHooks).toBe(0);
});

test("an 'upgrade' listener added after an earlier one was removed still has its sockets hooked", async () => {
  const server = http.createServer();
  const first = (): void => {};
  server.on('upgrade', first);
  const hooked: net.Socket[] = [];
  const listener = opened.listener(await listen(server, { host: HOST, onDrain: (socket) => hooked.push(socket) }));
  server.off('upgrade', first);
  await Promise.resolve();
  const { upgraded } = upgrades(server);
  await Promise.resolve();
  const client = await upgradedClient(listener.address().port);

  const closing = listener.close({ timeout: 600_000 });
  expect(hooked).toEqual(upgraded);
  hooked[0]?.end();
  await client.endAfterServer();
  const report = await opened.settled(listener, closing);
  expect(protocolOf(report).drainHooks).toBe(1);
});
