// Issue 4, test 6: connections that land after draining began are drained
// exactly once — one whose handshake was still in SYN_RECV when close()
// started, and a keep-alive connection that sends its next request during the
// drain.
import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Opened, waitFor } from '../helpers/kit.js';
import { heldHandshake } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe('stragglers', () => {
  test('a handshake in SYN_RECV when close() starts is waited for, accepted once and served with Connection: close', async () => {
    const server = http.createServer((_request, response) => response.end('served while draining\n'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const connections: boolean[] = [];
    listener.on('connection', () => connections.push(listener.state === 'draining'));
    const client = await heldHandshake(opened, listener.address().port, {
      request: 'GET /straggler HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    });
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 100,
      intervalMs: 50,
    });

    const closing = listener.close({ timeout: 25_000 });
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(1);
    client.go();

    const result = await client.result;
    const report = await closing;
    await opened.closed(listener);
    expect(result.error).toBeNull();
    expect(result.connected).toBe(true);
    expect(result.response).toMatch(/^HTTP\/1\.1 200 /);
    expect(result.response).toMatch(/\r\nconnection: close\r\n/i);
    expect(result.response.endsWith('served while draining\n')).toBe(true);
    expect(connections).toEqual([true]);
    expect(report).toMatchObject({
      queuedAtClose: 0,
      handshakingAtClose: 1,
      openAtClose: 0,
      accepted: 1,
      served: 1,
      ended: 0,
      destroyed: 0,
    });
  });

  test('a keep-alive connection whose next request comes during the drain is answered with Connection: close, counted once', async () => {
    const server = http.createServer((request, response) => response.end(`${request.url}\n`));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const { port } = listener.address();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<net.Socket>();
    const get = (path: string) =>
      new Promise<{ connection: string | undefined; body: string }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent }, (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ connection: response.headers.connection, body }));
        });
        req.on('socket', (socket: net.Socket) => sockets.add(opened.track(socket)));
        req.on('error', reject);
      });

    expect(await get('/before')).toEqual({ connection: 'keep-alive', body: '/before\n' });
    const closing = listener.close({ timeout: 25_000 });
    const during = get('/during');
    expect(await during).toEqual({ connection: 'close', body: '/during\n' });
    const report = await closing;
    await opened.closed(listener);
    agent.destroy();
    expect(sockets.size).toBe(1);
    expect(report).toMatchObject({ openAtClose: 1, accepted: 0, served: 1, ended: 0, destroyed: 0 });
  });
});
