import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { loadBinding } from '../../src/core/native.js';
import { ListenSocket, ListenerError } from '../../src/index.js';
import { Lines, Opened, acceptExactly, anyFdPointsTo, fdTarget, openFds, requireDist, run, verdict, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** Opens files until the kernel hands out `fd` again (it picks the lowest free number). */
function reuseFdNumber(fd: number, file: string): number {
  const extra: number[] = [];
  try {
    for (let i = 0; i < 64; i++) {
      const opened = fs.openSync(file, 'r');
      if (opened === fd) return opened;
      extra.push(opened);
    }
  } finally {
    for (const opened of extra) fs.closeSync(opened);
  }
  throw new Error(`fd ${fd} was not handed out again`);
}

describe('close', () => {
  test('a second close() is harmless, and a closed listener refuses every operation with ERR_LISTENER_CLOSED', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    listener.arm(() => {});
    listener.close();
    listener.close();
    expect(listener.closed).toBe(true);
    expect(listener.armed).toBe(false);
    const operations: Array<() => unknown> = [
      () => listener.arm(() => {}),
      () => listener.disarm(),
      () => listener.pending(),
      () => listener.pending({ handshakes: true }),
      () => listener.gate(true),
      () => listener.shutdown(),
      () => listener.listen(),
      () => listener.address(),
    ];
    for (const operation of operations) {
      let caught: unknown;
      try {
        operation();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ListenerError);
      expect(caught).toMatchObject({ code: 'ERR_LISTENER_CLOSED' });
    }
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
  });

  test('an fd number reused after close is not closed again by a second close (ListenSocket or native handle)', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const handle = loadBinding().open(4, '127.0.0.1', 0, 16, false, false);
    const listenerFd = listener.fd;
    const handleFd = handle.fd;
    listener.close();
    handle.close();
    expect(handle.fd).toBe(-1);

    const file = fs.realpathSync(process.execPath);
    const reused = [reuseFdNumber(Math.min(listenerFd, handleFd), file)];
    reused.push(reuseFdNumber(Math.max(listenerFd, handleFd), file));
    try {
      listener.close();
      handle.close();
      // The native handle knows it is closed: it fails with EBADF rather than
      // acting on whatever now has its old number.
      expect(() => handle.queueDepth()).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'getsockopt' }));
      expect(() => handle.address()).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => handle.gate(true)).toThrow(expect.objectContaining({ code: 'EBADF' }));
      expect(() => handle.arm(() => {}, () => {})).toThrow(expect.objectContaining({ code: 'EBADF' }));
      handle.disarm();
      for (const fd of reused) {
        expect(fdTarget(fd)).toBe(file);
        expect(fs.fstatSync(fd).isFile()).toBe(true);
      }
    } finally {
      for (const fd of reused) fs.closeSync(fd);
    }
  });

  test('close() from inside the accept callback stops delivery and frees the fd', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    const target = fdTarget(listener.fd)!;
    const batches: number[][] = [];
    const clients = Array.from({ length: 3 }, () => opened.raw(port));
    await waitFor('clients connected', () => clients.every((client) => client.connected));
    await waitFor('queued === 3', () => listener.pending().queued === 3);
    listener.arm((fds) => {
      batches.push(fds.map((fd) => opened.fd(fd)));
      listener.close();
    });
    await waitFor('one batch', () => batches.length === 1);
    expect(batches[0]).toHaveLength(3);
    expect(listener.closed).toBe(true);
    expect(anyFdPointsTo(target)).toBe(false);
    expect(clients.flatMap((client) => client.errors)).toEqual([]);
  });
});

describe('exceptions from the accept callback', () => {
  // A throw in the callback is an uncaught exception, as from any Node event
  // callback; with a handler installed, the listener keeps delivering.
  const THROWING_CALLBACK = `
const net = require('node:net');
const { ListenSocket } = require(process.argv[1]);
const uncaught = [];
if (process.argv[2] === 'handler') process.on('uncaughtException', (error) => uncaught.push(error.message));
(async () => {
  const listener = await ListenSocket.open({ host: '127.0.0.1' });
  const { port } = listener.address();
  const batches = [];
  listener.arm((fds) => {
    batches.push(fds.length);
    for (const fd of fds) require('node:fs').closeSync(fd);
    if (batches.length === 1) throw new Error('boom');
  });
  const connect = () => new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
  const first = await connect();
  for (let i = 0; i < 300 && batches.length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const second = await connect();
  for (let i = 0; i < 300 && batches.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  first.destroy();
  second.destroy();
  listener.close();
  console.log(JSON.stringify({ uncaught, batches }));
})();
`;

  test('a throw is reported as uncaught once, and the next batch is still delivered', async () => {
    const result = await run(process.execPath, ['-e', THROWING_CALLBACK, requireDist(), 'handler'], {
      killAfterMs: 10_000,
    });
    expect(verdict(result)).toEqual({ uncaught: ['boom'], batches: [1, 1] });
    expect(result.code).toBe(0);
  });

  test('with no handler, a throw ends the process like any uncaught exception', async () => {
    const result = await run(process.execPath, ['-e', THROWING_CALLBACK, requireDist(), 'none']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Error: boom');
    expect(result.stdout).toBe('');
  });
});

describe('garbage collection', () => {
  // Loads the built package like a user, then checks /proc/self/fd itself and
  // prints a verdict. Repeated gc() with turns of the loop in between gives the
  // finalizers their chance to run.
  const GC_SCRIPT = `
const fs = require('node:fs');
const net = require('node:net');
const { ListenSocket } = require(process.argv[1]);
const target = (fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return undefined; } };
const open = (link) => fs.readdirSync('/proc/self/fd').some((entry) => target(entry) === link);
async function collect() {
  for (let i = 0; i < 10; i++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
(async () => {
  const result = {};

  let forgotten = await ListenSocket.open({ host: '127.0.0.1' });
  const forgottenLink = target(forgotten.fd);
  result.forgottenWasOpen = open(forgottenLink);
  forgotten = undefined;
  await collect();
  result.forgottenClosedByGc = !open(forgottenLink);

  // Armed once, disarmed, forgotten: its callbacks must not keep it alive.
  let paused = await ListenSocket.open({ host: '127.0.0.1' });
  const pausedLink = target(paused.fd);
  paused.arm(() => {});
  paused.disarm();
  paused = undefined;
  await collect();
  result.disarmedClosedByGc = !open(pausedLink);

  // Closed, its number reused by a file, then collected: the file survives.
  let closed = await ListenSocket.open({ host: '127.0.0.1' });
  const closedFd = closed.fd;
  closed.close();
  const file = fs.realpathSync(process.execPath);
  const extra = [];
  let reused = -1;
  for (let i = 0; i < 64 && reused !== closedFd; i++) {
    const fd = fs.openSync(file, 'r');
    if (fd === closedFd) reused = fd; else extra.push(fd);
  }
  for (const fd of extra) fs.closeSync(fd);
  closed = undefined;
  await collect();
  result.reusedFdIntact = reused === closedFd && target(reused) === file;

  // Armed with no reference left: GC must not close a live listener.
  let armed = await ListenSocket.open({ host: '127.0.0.1' });
  const armedLink = target(armed.fd);
  const port = armed.address().port;
  let accepted = 0;
  armed.arm((fds) => { accepted += fds.length; for (const fd of fds) fs.closeSync(fd); });
  armed = undefined;
  await collect();
  result.armedStillOpen = open(armedLink);
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  for (let i = 0; i < 300 && accepted === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  result.armedAccepted = accepted;
  client.destroy();
  console.log(JSON.stringify(result));
  // The armed listener keeps the loop alive; exiting closes it through the env cleanup hook.
  process.exit(0);
})();
`;

  test('an unclosed handle is closed by GC, also after arm and disarm; a closed one never touches its reused fd; an armed one stays alive', async () => {
    const result = await run(process.execPath, ['--expose-gc', '-e', GC_SCRIPT, requireDist()]);
    expect(verdict(result)).toEqual({
      forgottenWasOpen: true,
      forgottenClosedByGc: true,
      disarmedClosedByGc: true,
      reusedFdIntact: true,
      armedStillOpen: true,
      armedAccepted: 1,
    });
    expect(result.code).toBe(0);
  });
});

describe('worker threads', () => {
  // Opens a listener, reports what its fd points to, and leaves without closing it.
  const WORKER = `
const fs = require('node:fs');
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { ListenSocket } = require(workerData.dist);
(async () => {
  const listener = await ListenSocket.open({ host: '127.0.0.1' });
  const link = fs.readlinkSync('/proc/self/fd/' + listener.fd);
  if (workerData.mode === 'idle') {
    parentPort.postMessage({ link });
    return;
  }
  let accepted = 0;
  listener.arm((fds) => {
    accepted += fds.length;
    for (const fd of fds) new net.Socket({ fd }).destroy();
    parentPort.postMessage({ link, accepted });
    if (workerData.mode === 'exit') process.exit(0);
  });
  const client = net.connect(listener.address().port, '127.0.0.1');
  client.on('error', () => {});
  client.on('connect', () => client.destroy());
})();
`;

  async function runWorker(mode: 'idle' | 'exit' | 'terminate'): Promise<{ link: string; accepted?: number; exitCode: number }> {
    const worker = new Worker(WORKER, { eval: true, workerData: { dist: requireDist(), mode } });
    let message: { link: string; accepted?: number } | undefined;
    const exited = new Promise<number>((resolve, reject) => {
      worker.on('error', reject);
      worker.on('exit', resolve);
    });
    worker.on('message', (received: { link: string; accepted?: number }) => {
      message ??= received;
      if (mode === 'terminate') void worker.terminate();
    });
    const exitCode = await exited;
    if (message === undefined) throw new Error(`the ${mode} worker exited (${exitCode}) without reporting`);
    return { ...message, exitCode };
  }

  test.each(['idle', 'exit', 'terminate'] as const)(
    'a worker that opens a listener and ends (%s) without closing it leaves no fd behind',
    async (mode) => {
      const before = new Set(openFds().values());
      const { link, accepted, exitCode } = await runWorker(mode);
      expect(link).toMatch(/^socket:\[\d+\]$/);
      expect(before.has(link)).toBe(false);
      if (mode !== 'idle') expect(accepted).toBe(1);
      expect(exitCode).toBe(mode === 'terminate' ? 1 : 0);
      expect(anyFdPointsTo(link)).toBe(false);
    },
  );
});

describe('accept errors', () => {
  // Runs with a low fd limit, uses it all up, and arms: accept4 fails with
  // EMFILE, which disarms, surfaces as 'error', and re-arms after a back-off.
  // Freeing fds after the third error lets the queued clients through.
  const EMFILE_SCRIPT = `
const fs = require('node:fs');
const { ListenSocket } = require(process.argv[1]);
(async () => {
  const listener = await ListenSocket.open({ host: '127.0.0.1' });
  console.log(JSON.stringify({ port: listener.address().port }));
  await new Promise((resolve) => process.stdin.once('data', resolve));
  const queued = listener.pending().queued;
  const hog = [];
  try { for (;;) hog.push(fs.openSync('/dev/null', 'r')); } catch (error) { if (error.code !== 'EMFILE') throw error; }
  const errors = [];
  let accepted = 0;
  let armedDuringBackoff;
  listener.on('error', (error) => {
    errors.push({ code: error.code, syscall: error.syscall, errno: error.errno });
    armedDuringBackoff ??= listener.armed;
    if (errors.length === 3) for (const fd of hog.splice(0)) fs.closeSync(fd);
  });
  listener.arm((fds) => {
    accepted += fds.length;
    for (const fd of fds) fs.closeSync(fd);
  });
  for (let i = 0; i < 500 && accepted < queued; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  listener.close();
  console.log(JSON.stringify({ queued, errors, accepted, armedDuringBackoff }));
  process.exit(0);
})();
`;

  test('EMFILE disarms, emits error, backs off and re-arms; the queued clients are then accepted', async () => {
    const child = opened.child(
      spawn('sh', ['-c', 'ulimit -n 64 && exec "$0" -e "$1" "$2"', process.execPath, EMFILE_SCRIPT, requireDist()], {
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    const stdout = new Lines(child.stdout);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const { port } = JSON.parse(await stdout.next('the child listening')) as { port: number };
    const clients = Array.from({ length: 3 }, () => opened.raw(port));
    await waitFor('clients connected', () => clients.every((client) => client.connected));
    child.stdin.write('go\n');
    const code = await exited;
    const result = JSON.parse(stdout.items.at(-1)!) as {
      queued: number;
      errors: { code: string; syscall: string; errno: number }[];
      accepted: number;
      armedDuringBackoff: boolean;
    };
    expect(code, stderr).toBe(0);
    expect(result.queued).toBe(3);
    expect(result.errors).toHaveLength(3);
    for (const error of result.errors) {
      expect(error).toEqual({ code: 'EMFILE', syscall: 'accept4', errno: -os.constants.errno.EMFILE });
    }
    expect(result.armedDuringBackoff).toBe(false);
    expect(result.accepted).toBe(3);
    expect(clients.flatMap((client) => client.errors)).toEqual([]);
  });
});

describe('accepted fds', () => {
  test('are owned by the callback: wrapping one in net.Socket carries data both ways', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const client = opened.raw(listener.address().port, { greeting: 'ping' });
    const { fds } = await acceptExactly(listener, opened, 1);
    const server = opened.adoptFd(fds[0]!);
    const received = await new Promise<string>((resolve) => server.once('data', (chunk) => resolve(String(chunk))));
    expect(received).toBe('ping');
    const reply = new Promise<string>((resolve) => client.socket.once('data', (chunk) => resolve(String(chunk))));
    server.write('pong');
    expect(await reply).toBe('pong');
  });
});
