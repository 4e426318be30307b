// Inputs and call orders at the edges of what the API accepts, on loopback:
// a restart beside a listener still in phase 2.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Opened, once } from '../helpers/close-fixtures.js';
import { RawClient, rawGet } from '../helpers/drain-kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

function tracked(client: RawClient): RawClient {
  opened.socket(client.socket);
  return client;
}

describe('resume() after another socket took the port in phase 2', () => {
  test('throws EADDRINUSE and the drain goes on: the close resolves, the connection it waited for is served, nobody is reset', async () => {
    const server = http.createServer((_request, response) => response.end('ok'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1', http: { quietWindow: 60_000 } }));
    const { port } = listener.address();
    const held = tracked(RawClient.connect(port));
    held.socket.write(rawGet('/'));
    expect(await held.response()).toMatchObject({ status: 200 });
    const closing = listener.close({ timeout: 60_000 });
    // Phase 2: the socket no longer listens, so a socket with SO_REUSEADDR
    // (every Node server) may bind and listen on the port — a restart that
    // does not wait for the drain.
    const successor = opened.server(net.createServer((socket) => socket.end('successor\n')));
    successor.listen(port, '127.0.0.1');
    await once(successor, 'listening');
    expect(() => listener.resume()).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    expect(listener.state).toBe('draining');
    // New clients reach the successor.
    const fresh = tracked(RawClient.connect(port));
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
