// Every touch of Node's private internals lives in src/core/node-internals.ts.
// These checks fail loudly, on each Node version CI runs (20, 22, 24), if
// Node renames or reshapes what the library relies on — instead of the
// library silently doing nothing.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import {
  connectionsCheckingInterval,
  hasListenHandle,
  keepsAlive,
  listeningFd,
  rawSocketOf,
} from '../../src/core/node-internals.js';
import { listen } from '../../src/index.js';
import { HOST, Opened, certificate, rawGet } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe(`Node ${process.version}`, () => {
  test("http's connection-checking interval is found under its symbol, and stopped when the listener closes", async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: HOST }));
    const interval = connectionsCheckingInterval(server);
    expect(interval).toBeDefined();
    expect((interval as unknown as { _destroyed: boolean })._destroyed).toBe(false);
    await opened.close(listener);
    expect((interval as unknown as { _destroyed: boolean })._destroyed).toBe(true);
  });

  test('server.listen() leaves a handle whose fd is the listening socket', async () => {
    const server = net.createServer();
    expect(hasListenHandle(server)).toBe(false);
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    try {
      expect(hasListenHandle(server)).toBe(true);
      expect(listeningFd(server)).toBeGreaterThan(2);
    } finally {
      server.close();
    }
  });

  test("a response's shouldKeepAlive is what decides Connection: close", async () => {
    let seen: boolean | undefined;
    const server = http.createServer((_request, response) => {
      seen = keepsAlive(response);
      response.end('ok');
    });
    const listener = opened.listener(await listen(server, { host: HOST }));
    const client = opened.raw(listener.address().port);
    client.socket.write(rawGet());
    expect((await client.response()).headers.connection).toBe('keep-alive');
    expect(seen).toBe(true);
    client.destroy();
  });

  test("a TLS server's socket keeps its raw socket as _parent", async () => {
    const { key, cert } = certificate();
    let parentIsRaw = false;
    const server = https.createServer({ key, cert }, (request, response) => {
      const raw = rawSocketOf(request.socket);
      parentIsRaw = raw instanceof net.Socket && raw !== request.socket;
      response.end('ok');
    });
    const listener = opened.listener(await listen(server, { host: HOST }));
    const client = opened.raw(listener.address().port, { secure: true });
    client.socket.write(rawGet());
    await client.response();
    expect(parentIsRaw).toBe(true);
    client.destroy();
  });
});
