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
import { ListenSocket, listen } from '../../src/index.js';
import { HOST, Opened, acceptExactly, certificate, rawGet, waitFor } from '../helpers/kit.js';
import { tcpOptions } from '../helpers/python.js';

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

  // The listener sets TCP_NODELAY once on the listening socket for an http
  // server and makes each socket with `noDelay: true` instead of a
  // setsockopt per connection. That is right only while the kernel copies
  // the option at accept, and the Socket constructor records `noDelay` for
  // an fd without a syscall, so that setNoDelay(true) is skipped and
  // setNoDelay(false) still reaches the kernel (lib/net.js kSetNoDelay).
  test('an accepted socket inherits TCP_NODELAY; new net.Socket({ fd, noDelay }) only records it', async () => {
    const socket = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    const { port } = socket.address();
    // The child socket is cloned from the listener when the handshake completes.
    socket.noDelay(true);
    const first = opened.raw(port);
    await waitFor('the first client to connect', () => first.connected);
    socket.noDelay(false);
    const second = opened.raw(port);
    await waitFor('the second client to connect', () => second.connected);
    const { fds } = await acceptExactly(socket, opened, 2);
    socket.disarm();
    const [inherited, plain] = fds as [number, number];
    expect((await tcpOptions(inherited)).nodelay).toBe(1);
    expect((await tcpOptions(plain)).nodelay).toBe(0);

    // The sockets own the fds from here on.
    opened.release(inherited);
    opened.release(plain);
    const withNoDelay = new net.Socket({ fd: inherited, noDelay: true } as net.SocketConstructorOpts);
    withNoDelay.setNoDelay(false);
    expect((await tcpOptions(inherited)).nodelay).toBe(0);
    withNoDelay.setNoDelay(true);
    expect((await tcpOptions(inherited)).nodelay).toBe(1);

    // Recorded, not applied: the fd keeps what it had, and setNoDelay(true) is skipped.
    const recordedOnly = new net.Socket({ fd: plain, noDelay: true } as net.SocketConstructorOpts);
    expect((await tcpOptions(plain)).nodelay).toBe(0);
    recordedOnly.setNoDelay(true);
    expect((await tcpOptions(plain)).nodelay).toBe(0);
    withNoDelay.destroy();
    recordedOnly.destroy();
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
