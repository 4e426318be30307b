// Inputs and call orders at the edges of what the API accepts, on loopback:
// a restart beside a listener still in phase 2 (another socket on the port;
// the same server object listening again), the largest timeout close()
// takes, server.maxConnections changed while the server runs, and adopt()
// of a server with keep-alive connections already open.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { adopt, listen } from '../../src/index.js';
import { Opened, codeOf, nextEvent, rawGet, sleep, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** A net server that greets each connection and ends when its client ends. */
function greeter(): net.Server {
  return net.createServer((socket) => {
    socket.on('error', () => {});
    socket.resume();
    socket.end('hello\n');
  });
}

/** A net server that greets each connection and waits for its client to end. */
function greeterThatWaits(): net.Server {
  return net.createServer((socket) => {
    socket.on('error', () => {});
    socket.write('hello\n');
    socket.on('end', () => socket.end());
  });
}

describe('resume() after another socket took the port in phase 2', () => {
  test('throws EADDRINUSE and the drain goes on: the close resolves, the connection it waited for is served, nobody is reset', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1', http: { quietWindow: 60_000 } }));
    const { port } = listener.address();
    const held = opened.raw(port);
    held.socket.write(rawGet('/'));
    expect(await held.response()).toMatchObject({ status: 200 });
    const closing = listener.close({ timeout: 60_000 });
    // Phase 2: the socket no longer listens, so a socket with SO_REUSEADDR
    // (every Node server) may bind and listen on the port — a restart that
    // does not wait for the drain.
    const successor = opened.server(net.createServer((socket) => socket.end('successor\n')));
    successor.listen(port, '127.0.0.1');
    await nextEvent(successor, 'listening');
    expect(() => listener.resume()).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    expect(listener.state).toBe('draining');
    // New clients reach the successor.
    const fresh = opened.raw(port);
    await fresh.finished();
    expect(fresh.data).toBe('successor\n');
    held.socket.end();
    const report = await closing;
    await opened.closed(listener);
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect([held.errors, fresh.errors]).toEqual([[], []]);
    successor.close();
  });
});

// Defects the adversarial pass found; each test failed on the code before
// its fix.
describe('defects', () => {
  // listener.ts arms the force deadline with setTimeout(timeout + forceTimeout);
  // each is validated to at most 2^31 - 1, their sum is not, and Node clamps
  // an overflowing delay to 1 ms (TimeoutOverflowWarning).
  test('close({ timeout: 2 ** 31 - 1 }): the largest timeout accepted does not destroy every connection at once', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning.name);
    };
    process.on('warning', onWarning);
    try {
      const listener = opened.listener(await listen(greeterThatWaits(), { host: '127.0.0.1' }));
      const client = opened.raw(listener.address().port);
      await client.until((c) => c.data === 'hello\n', 'the greeting');
      const closing = listener.close({ timeout: 2 ** 31 - 1 });
      // Long enough for a 1 ms timer to have fired; the connection should
      // still be open, waiting for its client.
      await sleep(50);
      expect(client.closed).toBe(false);
      client.socket.end();
      const report = await closing;
      expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
      expect(warnings).toEqual([]);
    } finally {
      process.removeListener('warning', onWarning);
    }
  });

  // The limit is read only when a connection is accepted or released
  // (Listener #updateArming): with none open, nothing ever reads it again.
  test('server.maxConnections raised from 0 while a client waits in the queue: the client is accepted', async () => {
    const server = greeter();
    server.maxConnections = 0;
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const client = opened.raw(listener.address().port);
    await waitFor('the client queued', () => listener.pending().queued === 1);
    server.maxConnections = 10;
    // Node reads maxConnections at each accept; here the client waits on.
    await waitFor('the queued client to be greeted', () => client.data === 'hello\n', { tries: 150 });
    expect(client.errors).toEqual([]);
  });

  // The HTTP drain and the deadline only know connections the listener
  // accepted; adopt() leaves the server's own connections out of the close
  // (openAtClose 0), and server.close() is routed past Node's
  // closeIdleConnections(), so an idle one stays until its client leaves or
  // keepAliveTimeout fires, and server.close(cb) waits for it.
  test('adopt(): an idle keep-alive connection the server accepted before adopt() is ended by the close', async () => {
    const server = opened.server(http.createServer({ keepAliveTimeout: 60_000 }, (_request, response) => response.end('ok')));
    server.listen(0, '127.0.0.1');
    await nextEvent(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const before = opened.raw(port);
    before.socket.write(rawGet('/'));
    expect(await before.response()).toMatchObject({ status: 200, headers: { connection: 'keep-alive' } });
    const listener = opened.listener(adopt(server, { http: { quietWindow: 100, linger: 300 } }));
    const report = await listener.close({ timeout: 300, forceTimeout: 300 });
    await opened.closed(listener);
    await waitFor("the server's FIN on the connection from before adopt()", () => before.ended || before.closed, { tries: 150 });
    expect(before.errors).toEqual([]);
    expect(report.openAtClose).toBe(1);
  });

  // server.close() is routed to the two-phase close; Node then lets the same
  // server listen again at once (its _handle is gone). The old drain's
  // HttpDrain listens on the server itself, and its end clears the server's
  // connections-checking interval, whichever listen() created it.
  describe('server.close() then server.listen() on the same server while the old drain is in phase 2', () => {
    async function restarted(serverOptions: http.ServerOptions = {}) {
      const server = http.createServer(serverOptions, (_request, response) => response.end('ok'));
      const listener = opened.listener(await listen(server, { host: '127.0.0.1', http: { quietWindow: 60_000 } }));
      const { port } = listener.address();
      const old = opened.raw(port);
      old.socket.write(rawGet('/'));
      await old.response();
      server.close();
      expect(listener.state).toBe('draining');
      opened.server(server);
      server.listen(port, '127.0.0.1');
      await nextEvent(server, 'listening');
      return { server, listener, port, old };
    }

    test("a connection the new listen accepts is not drained by the old close: its response is keep-alive", async () => {
      const { listener, port, old } = await restarted();
      const fresh = opened.raw(port);
      fresh.socket.write(rawGet('/'));
      const response = await fresh.response();
      old.socket.end();
      await opened.closed(listener);
      expect(response.headers.connection).toBe('keep-alive');
    });

    test("after the old drain ends, the new listen still enforces headersTimeout (slowloris gets its 408)", async () => {
      const { listener, port, old } = await restarted({ headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 50 });
      old.socket.end();
      await opened.closed(listener);
      const slow = opened.raw(port);
      slow.socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n');
      await waitFor('the 408', () => slow.data.startsWith('HTTP/1.1 408') || slow.closed, { tries: 150 });
      expect(slow.data).toMatch(/^HTTP\/1\.1 408 /);
      expect(slow.errors.map((error) => codeOf(error))).toEqual([]);
    });
  });
});
