// Faults in the close path: the process out of file descriptors while the
// queue is swept, and server.close() while the sweep waits.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Lines, Opened, distEntry, nextEvent } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

// The server runs in a child limited to 128 descriptors: it pauses, reports
// its port, waits until the parent's clients are queued, then takes every
// descriptor but 5 and closes. accept4 fails with EMFILE in the middle of the
// sweep; once the listener is closed it gives the descriptors back.
const SERVER = `
const fs = require('node:fs');
const net = require('node:net');
const { listen } = require(${JSON.stringify(distEntry)});
(async () => {
  const server = net.createServer((socket) => { socket.resume(); socket.end('bye'); });
  const listener = await listen(server, { host: '127.0.0.1', port: 0, backlog: 128 });
  const errors = [];
  listener.on('error', (error) => errors.push(error.code));
  listener.pause();
  process.stdout.write(JSON.stringify({ port: listener.address().port }) + '\\n');
  process.stdin.once('data', async () => {
    const filler = [];
    try { for (;;) filler.push(fs.openSync('/dev/null', 'r')); } catch {}
    for (let i = 0; i < 5; i++) fs.closeSync(filler.pop());
    listener.once('close', () => { for (const fd of filler) fs.closeSync(fd); });
    const report = await listener.close({ timeout: 10000 });
    process.stdout.write(JSON.stringify({ report, errors }) + '\\n');
    process.exit(0);
  });
})();
`;

interface Client {
  connected: Promise<unknown>;
  /** 'served', or how the client ended otherwise. */
  outcome: Promise<string>;
}

function client(port: number): Client {
  const socket = opened.track(net.connect({ port, host: '127.0.0.1' }));
  let received = '';
  socket.on('data', (chunk) => (received += chunk));
  return {
    connected: nextEvent(socket, 'connect'),
    outcome: new Promise((resolve) => {
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      socket.on('close', () => resolve(received === 'bye' ? 'served' : `closed after ${JSON.stringify(received)}`));
    }),
  };
}

describe('faults in the close path', () => {
  test('EMFILE in the middle of the sweep: every queued client is still served, none reset', async () => {
    const child = spawn('sh', ['-c', `ulimit -n 128 && exec "${process.execPath}" -e "$SERVER"`], {
      env: { ...process.env, SERVER },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = nextEvent(child, 'exit');
    const output = new Lines(child.stdout);
    try {
      const { port } = JSON.parse(await output.next('the port')) as { port: number };
      const clients = Array.from({ length: 40 }, () => client(port));
      // Every client is connected (in the kernel queue) before the close starts.
      await Promise.all(clients.map((c) => c.connected));
      child.stdin.write('close\n');
      const result = JSON.parse(await output.next('the close report')) as {
        report: { queuedAtClose: number; accepted: number };
        errors: string[];
      };
      const seen = await Promise.all(clients.map((c) => c.outcome));
      expect(result.report.queuedAtClose).toBe(40);
      expect(result.errors).toContain('EMFILE');
      expect(result.report.accepted).toBe(40);
      expect(seen.filter((outcome) => outcome !== 'served')).toEqual([]);
    } finally {
      child.kill();
      await exited;
    }
  });

  test("server.close() while the sweep waits (queue full at the close): the server's 'close' comes once, after the queue is served", async () => {
    const events: string[] = [];
    const server = net.createServer((socket) => {
      events.push('connection');
      socket.resume();
      socket.end('bye');
    });
    const listener = await listen(server, { host: '127.0.0.1', port: 0, backlog: 2 });
    const { port } = listener.address();
    listener.pause();
    const clients = Array.from({ length: 3 }, () => client(port));
    await Promise.all(clients.map((c) => c.connected));
    expect(listener.pending().queued).toBe(3);
    server.on('close', () => events.push('server close'));
    const closed = nextEvent(listener, 'close');
    server.close();
    expect(await Promise.all(clients.map((c) => c.outcome))).toEqual(['served', 'served', 'served']);
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual(['connection', 'connection', 'connection', 'server close']);
  });
});
