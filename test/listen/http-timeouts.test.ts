// http's connection tracking starts on 'listening' (setupConnectionsTracking):
// a server fed by the listener must enforce headersTimeout and requestTimeout,
// close idle keep-alive sockets at keepAliveTimeout and through
// closeIdleConnections(), exactly as after server.listen(). Each test runs
// against both, so a pass under listen(server) means parity, not luck.
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, nodeListen, waitFor, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

type Mode = 'server.listen()' | 'listen(server)';
const modes: Mode[] = ['server.listen()', 'listen(server)'];

interface Started {
  port: number;
  /** Accepted connections still open, as the listener counts them (or Node, for server.listen()). */
  open(): Promise<number>;
}

async function start(mode: Mode, server: http.Server): Promise<Started> {
  if (mode === 'server.listen()') {
    const port = await nodeListen(opened.server(server));
    return {
      port,
      open: () => new Promise((resolve) => server.getConnections((_e, n) => resolve(n))),
    };
  }
  const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
  return { port: listener.address().port, open: async () => listener.count - 1 };
}

const DRIP_MS = 50;
const DRIP_BOUND = 200; // 10 s of dripping: a hang bound, far beyond the timeouts

/** Sends `text` one byte every DRIP_MS until the server closes the connection; resolves with bytes sent. */
async function drip(client: RawClient, text: string): Promise<number> {
  await waitFor('the client to connect', () => client.connected || client.closed);
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (client.closed || client.ended || sent >= DRIP_BOUND) {
        clearInterval(timer);
        resolve();
        return;
      }
      client.socket.write(text[sent % text.length]!);
      sent++;
    }, DRIP_MS);
  });
  return sent;
}

function slowServer(options: http.ServerOptions, clientErrors: string[]): http.Server {
  const server = http.createServer({ connectionsCheckingInterval: 100, ...options }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('too late'));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    clientErrors.push(error.code ?? error.message);
    socket.destroy();
  });
  return server;
}

describe.each(modes)('%s', (mode) => {
  test('headersTimeout cuts off a client sending its headers one byte at a time', async () => {
    const clientErrors: string[] = [];
    const server = slowServer({ headersTimeout: 500, requestTimeout: 60_000 }, clientErrors);
    const { port, open } = await start(mode, server);
    const client = opened.raw(port);

    const sent = await drip(client, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(1000));
    expect(sent).toBeLessThan(DRIP_BOUND);
    await waitFor('the client to see the close', () => client.closed);
    expect(clientErrors).toEqual(['ERR_HTTP_REQUEST_TIMEOUT']);
    expect(client.data).not.toContain('too late');
    await waitFor('the connection to be released', async () => (await open()) === 0);
  });

  test('requestTimeout cuts off a client sending its body one byte at a time', async () => {
    const clientErrors: string[] = [];
    const server = slowServer({ headersTimeout: 500, requestTimeout: 1000 }, clientErrors);
    const { port, open } = await start(mode, server);
    const client = opened.raw(port);
    await waitFor('the client to connect', () => client.connected);
    client.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');

    const sent = await drip(client, 'b');
    expect(sent).toBeLessThan(DRIP_BOUND);
    await waitFor('the client to see the close', () => client.closed);
    expect(clientErrors).toEqual(['ERR_HTTP_REQUEST_TIMEOUT']);
    expect(client.data).not.toContain('too late');
    await waitFor('the connection to be released', async () => (await open()) === 0);
  });

  test('keepAliveTimeout closes an idle keep-alive socket', async () => {
    const server = http.createServer({ keepAliveTimeout: 300 }, (_req, res) => res.end('ok'));
    const { port, open } = await start(mode, server);
    const client = opened.raw(port);
    await waitFor('the client to connect', () => client.connected);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

    await waitFor('the response', () => client.data.endsWith('\r\n\r\nok'));
    expect(client.data).toMatch(/^HTTP\/1\.1 200 /);
    expect(client.data.toLowerCase()).toContain('connection: keep-alive');
    await waitFor('the server to end the idle socket', () => client.ended, { tries: 750 });
    await waitFor('the client to close', () => client.closed);
    expect(client.errors).toEqual([]);
    await waitFor('the connection to be released', async () => (await open()) === 0);
  });

  test('closeIdleConnections() ends idle keep-alive sockets and spares a busy one', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let slowArrived = false;
    const server = http.createServer({ keepAliveTimeout: 60_000 }, async (req, res) => {
      if (req.url === '/slow') {
        slowArrived = true;
        await released;
      }
      res.end('ok');
    });
    const { port, open } = await start(mode, server);
    const idle = opened.raw(port);
    const busy = opened.raw(port);
    await waitFor('both clients to connect', () => idle.connected && busy.connected);
    idle.socket.write('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n');
    busy.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor('the idle client to be answered', () => idle.data.endsWith('\r\n\r\nok'));
    await waitFor('the slow request to arrive', () => slowArrived);

    server.closeIdleConnections();
    await waitFor('the idle socket to close', () => idle.closed);
    expect(busy.closed).toBe(false);

    release();
    await waitFor('the busy client to be answered', () => busy.data.endsWith('\r\n\r\nok'));
    expect(busy.errors).toEqual([]);
    expect(idle.errors).toEqual([]);
    busy.socket.end();
    await waitFor('the connections to be released', async () => (await open()) === 0);
  });
});
