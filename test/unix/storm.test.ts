// Clients connecting in a loop to a Unix-domain listener that listens and
// closes on one name 20 times: no connection that existed is ever reset.
// Connects that find nobody (ENOENT once the path is unlinked, ECONNREFUSED
// once the socket is shut down or before the next listen) are counted apart.
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type CloseReport, type Listener } from '../../src/index.js';
import { Opened } from '../helpers/kit.js';
import { unixLoop } from '../helpers/load.js';

const CYCLES = 20;
const CONCURRENCY = 32;
// A cycle closes once it has accepted this many connections, from inside the
// user's 'connection' listener: an accept batch is under way, and with 1 ms
// of work per connection the clients keep the queue filled meanwhile.
const ACCEPTED_PER_CYCLE = 100;
const BURN_MS = 1;

const opened = new Opened();
afterEach(() => opened.dispose());

function burn(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe.each([
  ['a socket file', (dir: string) => path.join(dir, 'storm.sock')],
  ['an abstract name', () => `\0graceful-listener-storm-${process.pid}-${Math.random().toString(36).slice(2)}`],
])('on %s', (_kind, name) => {
  test(`${CYCLES} closes under a connect loop: 0 resets, every connection answered`, async () => {
    const socketPath = name(opened.tempDir('gl-unix-storm-'));
    let served = 0;
    const serverErrors: string[] = [];
    let listener: Listener<net.Socket> | undefined;
    let closing: Promise<CloseReport> | undefined;
    let acceptedThisCycle = 0;
    const server = net.createServer((socket) => {
      burn(BURN_MS);
      if (++acceptedThisCycle === ACCEPTED_PER_CYCLE) closing = listener!.close();
      socket.on('error', (error: NodeJS.ErrnoException) => serverErrors.push(error.code ?? error.message));
      socket.once('data', () => {
        served++;
        socket.end('pong\n');
      });
    });
    const clients = await unixLoop(opened, socketPath, { concurrency: CONCURRENCY, maxMs: 120_000 });

    const reports: CloseReport[] = [];
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      acceptedThisCycle = 0;
      closing = undefined;
      listener = opened.listener(await listen(server, { path: socketPath }));
      await new Promise<void>((resolve) => listener!.once('draining', () => resolve()));
      reports.push(await opened.settled(listener, closing!));
    }
    const result = await clients.stop();

    expect(result.failures).toEqual({});
    expect(serverErrors).toEqual([]);
    // Every connection the server answered, a client saw answered: none was
    // cut, and the clients had nothing else to count.
    expect(result.answered).toBe(served);
    const accepted = reports.reduce((total, report) => total + report.accepted, 0);
    const queuedAtClose = reports.reduce((total, report) => total + report.queuedAtClose, 0);
    // The closes met queued clients, and served them.
    expect(queuedAtClose).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThanOrEqual(queuedAtClose);
    expect(reports.every((report) => report.gated && report.destroyed === 0 && report.queueLost === 0)).toBe(true);
    expect(Object.keys(result.connectErrors).every((code) => code === 'ENOENT' || code === 'ECONNREFUSED')).toBe(true);
  });
});
