// A fresh bind beside the running listener (SO_REUSEPORT), for a new process
// that cannot receive the socket: the old member must not reset what the
// reuseport hash sends it. Its close steers every new SYN to the member bound
// last (or, with net.ipv4.tcp_migrate_req, lets the kernel move its queue),
// sweeps, and closes. An open-loop connect storm across 20 old/new overlaps:
// nobody reset. The same overlaps with a plain close of the old member reset
// clients: the test proves its own teeth.
import net from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { ListenSocket, listen, type CloseReport, type ServerListener } from '../../src/index.js';
import { Opened, sleep } from '../helpers/kit.js';
import { startStorm } from '../helpers/load.js';

const OVERLAPS = 20;
const RATE = 2000;

const opened = new Opened();
afterEach(() => opened.dispose());

/** Answers each connection's "ping" with "pong", as the storm expects. */
function pong(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.once('data', () => socket.end('pong\n'));
}

/** A storm of at most 120 s (a hang bound) that the test stops. */
function storm(port: number) {
  return startStorm(opened, port, { rate: RATE, maxMs: 120_000, graceMs: 10_000, connectTimeoutMs: 4000 });
}

test('20 overlaps of an old and a new listener under a connect storm: the old one steers and closes, nobody is reset', { timeout: 180_000 }, async () => {
  let old: ServerListener = opened.listener(await listen(net.createServer(pong), { host: '127.0.0.1', reusePort: true }));
  const port = old.address().port;
  const load = storm(port);
  const reports: CloseReport[] = [];
  for (let i = 0; i < OVERLAPS; i++) {
    await sleep(150);
    const next = opened.listener(await listen(net.createServer(pong), { host: '127.0.0.1', port, reusePort: true }));
    await sleep(50);
    reports.push(await old.close({ timeout: 10_000 }));
    old = next;
  }
  await sleep(150);
  const result = await load.stop();
  await old.close();
  console.log(`reuseport overlaps: ${JSON.stringify({ result, paths: reports.map((r) => r.reuseport) })}`);
  expect(result.resetEstablished).toBe(0);
  expect(result.resetConnecting).toBe(0);
  expect(result.noAnswer).toBe(0);
  expect(result.stalled).toBe(0);
  expect(result.answered).toBe(result.established);
  expect(result.answered).toBeGreaterThan(OVERLAPS * 10);
  // Every old member had a sibling: none gated, each steered or migrated.
  for (const report of reports) {
    expect(report.gated).toBe(false);
    expect(['steered', 'migrated']).toContain(report.reuseport);
    expect(report.ended + report.destroyed).toBe(0);
  }
});

test('the same overlaps closing the old member plainly (no steering, no sweep): clients are reset', { timeout: 180_000 }, async () => {
  const member = async (port: number): Promise<ListenSocket> => {
    const socket = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1', port, reusePort: true }));
    socket.arm((fds) => {
      for (const fd of fds) pong(new net.Socket({ fd, readable: true, writable: true }));
    });
    return socket;
  };
  let old = await member(0);
  const port = old.address().port;
  const load = storm(port);
  for (let i = 0; i < OVERLAPS; i++) {
    await sleep(150);
    const next = await member(port);
    await sleep(50);
    // What a plain close does to a member's queue: the kernel resets it.
    old.disarm();
    await sleep(20);
    old.close();
    old = next;
  }
  await sleep(150);
  const result = await load.stop();
  console.log(`reuseport overlaps, plain close: ${JSON.stringify(result)}`);
  expect(result.resetEstablished + result.resetConnecting).toBeGreaterThan(0);
});
