// Issue 4, test 1: an accept queue built while the event loop is blocked is
// served in full by close(), where server.close() resets it.
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, listen } from '../../src/index.js';
import { Opened, blockUntil } from '../helpers/kit.js';
import { queuedClients, tally } from '../helpers/load.js';

const CLIENTS = 40;
const opened = new Opened();
afterEach(() => opened.dispose());

function answer(request: http.IncomingMessage, response: http.ServerResponse): void {
  response.end(`served ${request.url}\n`);
}

describe('a queue built while the event loop is blocked', () => {
  test('close() accepts and serves all 40 queued clients, none reset', async () => {
    const server = http.createServer(answer);
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const states: string[] = [listener.state];
    for (const event of ['draining', 'accepting', 'close']) listener.on(event, () => states.push(event));
    const clients = await queuedClients(listener.address().port, CLIENTS);
    opened.child(clients.child);

    clients.go();
    // The loop stays blocked until the kernel holds all 40 completed
    // handshakes in the accept queue; nothing can accept them meanwhile.
    const queued = blockUntil(() => listener.pending().queued === CLIENTS);
    const pending = listener.pending();
    const report = listener.close();

    expect(queued).toBe(true);
    expect(pending.queued).toBe(CLIENTS);
    // The sweep accepted everything synchronously inside close().
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(1 + CLIENTS);

    const results = await clients.results;
    const { queuedAtClose, accepted, openAtClose, ended, destroyed } = await report;
    await opened.closed(listener);
    expect(tally(results, (r) => r.error ?? String(r.status))).toEqual({ 200: CLIENTS });
    expect(results.every((r) => r.connected && r.connectionClose)).toBe(true);
    expect({ queuedAtClose, accepted, openAtClose, ended, destroyed }).toEqual({
      queuedAtClose: CLIENTS,
      accepted: CLIENTS,
      openAtClose: 0,
      ended: 0,
      destroyed: 0,
    });
    expect(states).toEqual(['accepting', 'draining', 'close']);
    expect(listener.count).toBe(0);
  });

  test('server.close() on the same queue resets the clients (the failure the listener prevents)', async () => {
    const server = opened.server(http.createServer(answer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    // A dup of Node's listening fd, only to read the queue depth; it is closed
    // before server.close() so that Node's close really closes the socket.
    const probe = ListenSocket.adopt(server);
    const clients = await queuedClients(port, CLIENTS);
    opened.child(clients.child);

    let queued: boolean;
    clients.go();
    try {
      queued = blockUntil(() => probe.pending().queued === CLIENTS);
    } finally {
      probe.close();
    }
    server.close();

    expect(queued).toBe(true);
    const results = await clients.results;
    const outcomes = tally(results, (r) => r.error ?? String(r.status));
    expect(outcomes.ECONNRESET ?? 0).toBeGreaterThanOrEqual(30);
    expect(results.filter((r) => r.status === 200).length + (outcomes.ECONNRESET ?? 0)).toBe(CLIENTS);
  });
});
