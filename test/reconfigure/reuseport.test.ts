// A fresh bind beside the running listener (SO_REUSEPORT), for a new process
// that cannot receive the socket: the old member must not reset what the
// reuseport hash sends it. Its close steers every new SYN to the member bound
// last (or, with net.ipv4.tcp_migrate_req, lets the kernel move its queue),
// sweeps, and closes. An open-loop connect storm across 20 old/new overlaps:
// nobody reset. The same overlaps with a plain close of the old member reset
// clients: the test proves its own teeth.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterEach, expect, test } from 'vitest';
import { ListenSocket, listen, type CloseReport, type ServerListener } from '../../src/index.js';
import { compileStorm } from '../helpers/load.js';

const OVERLAPS = 20;
const RATE = 2000;

interface StormResult {
  attempted: number;
  established: number;
  answered: number;
  refused: number;
  timedOut: number;
  resetEstablished: number;
  resetConnecting: number;
  noAnswer: number;
  stalled: number;
  other: Record<string, number>;
}

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) step();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Answers each connection's "ping" with "pong", as the storm expects. */
function pong(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.once('data', () => socket.end('pong\n'));
}

function storm(port: number) {
  const child = spawn(compileStorm(), ['127.0.0.1', String(port), String(RATE), '120000', '10000', '4000'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  cleanup.push(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    async stop(): Promise<StormResult> {
      child.stdin.end();
      await exited;
      return JSON.parse(output) as StormResult;
    },
  };
}

test('20 overlaps of an old and a new listener under a connect storm: the old one steers and closes, nobody is reset', { timeout: 180_000 }, async () => {
  let old: ServerListener = await listen(net.createServer(pong), { host: '127.0.0.1', reusePort: true });
  const port = old.address().port;
  cleanup.push(() => void old.destroy());
  const load = storm(port);
  const reports: CloseReport[] = [];
  for (let i = 0; i < OVERLAPS; i++) {
    await sleep(150);
    const next = await listen(net.createServer(pong), { host: '127.0.0.1', port, reusePort: true });
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
    const socket = await ListenSocket.open({ host: '127.0.0.1', port, reusePort: true });
    socket.arm((fds) => {
      for (const fd of fds) pong(new net.Socket({ fd, readable: true, writable: true }));
    });
    return socket;
  };
  let old = await member(0);
  const port = old.address().port;
  cleanup.push(() => old.close());
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
