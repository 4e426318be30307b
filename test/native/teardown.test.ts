// Closing a handle that was ever armed stops its poll before it closes the
// fd. The order matters for an adopted socket, whose file description stays
// open in the caller's fd: epoll keys a registration by (description, fd
// number) and removes it by itself only when the description is released, so
// libuv's EPOLL_CTL_DEL (uv_poll_stop) must run while our fd number is still
// open. Closed first, the DEL fails with EBADF, the registration stays in the
// loop's epoll set, and while the shared socket is readable epoll_wait keeps
// reporting an fd number libuv no longer watches (or that names another fd).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';
import { Opened, acceptExactly, fdTarget, openFds, requireDist, run, verdict, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** Registrations of the socket `link` ("socket:[inode]") in this process's epoll sets, as "epfd:tfd". */
function epollRegistrations(link: string): string[] {
  const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  if (inode === undefined) throw new Error(`not a socket: ${link}`);
  const hex = Number(inode).toString(16);
  const found: string[] = [];
  for (const [fd, target] of openFds()) {
    if (target !== 'anon_inode:[eventpoll]') continue;
    let info: string;
    try {
      info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    for (const match of info.matchAll(/^tfd:\s*(\d+)\s.*\sino:([0-9a-f]+)\s/gm)) {
      if (match[2] === hex) found.push(`${fd}:${match[1]}`);
    }
  }
  return found;
}

function countOpen(link: string): number {
  return [...openFds().values()].filter((target) => target === link).length;
}

describe('closing an armed handle whose socket stays open elsewhere', () => {
  test('close() leaves no epoll registration behind', async () => {
    const original = loadBinding().open(4, '127.0.0.1', 0, 16, false, false);
    try {
      const link = fdTarget(original.fd)!;
      const adopted = opened.listenSocket(ListenSocket.adopt(original.fd));
      const adoptedFd = adopted.fd;
      const client = opened.raw(adopted.address().port);
      await acceptExactly(adopted, opened, 1);
      await waitFor('client connected', () => client.connected);
      expect(epollRegistrations(link).map((entry) => entry.split(':')[1])).toContain(String(adoptedFd));

      adopted.close();
      expect(fdTarget(adoptedFd)).toBeUndefined();
      expect(epollRegistrations(link)).toEqual([]);
      expect(original.queueDepth().queued).toBe(0);
    } finally {
      original.close();
    }
  });
});

const hasStrace = spawnSync('strace', ['-V']).status === 0;

describe('environment teardown (the async cleanup hook)', () => {
  // A worker adopts the main thread's listener, arms it and accepts once; the
  // main thread terminates it, so the cleanup hook releases an armed handle.
  // Run under strace: the worker's EPOLL_CTL_DEL of its fd must come before
  // the close() of that fd.
  const TERMINATE = `
const { Worker } = require('node:worker_threads');
const net = require('node:net');
const { ListenSocket } = require(process.argv[1]);
(async () => {
  const original = await ListenSocket.open({ host: '127.0.0.1' });
  const { port } = original.address();
  const worker = new Worker(\`
    const net = require('node:net');
    const { parentPort, workerData } = require('node:worker_threads');
    const { ListenSocket } = require(workerData.dist);
    const listener = ListenSocket.adopt(workerData.fd);
    listener.arm((fds) => {
      for (const fd of fds) new net.Socket({ fd }).destroy();
      parentPort.postMessage(listener.fd);
    });
    parentPort.postMessage('ready');
  \`, { eval: true, workerData: { dist: process.argv[1], fd: original.fd } });
  let fd;
  const clients = [];
  worker.on('message', (message) => {
    if (message === 'ready') clients.push(net.connect(port, '127.0.0.1').on('error', () => {}));
    else if (fd === undefined) {
      fd = message;
      // Queued when the worker goes: its shared socket is readable at teardown.
      const queued = net.connect(port, '127.0.0.1').on('error', () => {});
      clients.push(queued);
      queued.on('connect', () => worker.terminate());
    }
  });
  const code = await new Promise((resolve) => worker.on('exit', resolve));
  for (const client of clients) client.destroy();
  original.close();
  console.log(JSON.stringify({ fd, code }));
})();
`;

  test.skipIf(!hasStrace)('a terminated worker stops polling its armed listener before closing the fd', async () => {
    const dir = opened.tempDir('gl-strace-');
    const trace = path.join(dir, 'trace');
    const result = await run('strace', ['-f', '-qq', '-e', 'trace=close,epoll_ctl', '-o', trace, process.execPath, '-e', TERMINATE, requireDist()], {
      killAfterMs: 30_000,
    });
    expect(result.code, result.stderr).toBe(0);
    const { fd, code } = verdict<{ fd: number; code: number }>(result);
    expect(code).toBe(1);
    expect(fd).toBeGreaterThan(2);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const dels = lines.filter((line) => new RegExp(`epoll_ctl\\(\\d+, EPOLL_CTL_DEL, ${fd},`).test(line));
    expect(dels.some((line) => / = 0$/.test(line))).toBe(true);
    expect(dels.filter((line) => line.includes('EBADF'))).toEqual([]);
    expect(lines.some((line) => new RegExp(`close\\(${fd}\\)\\s+= 0$`).test(line))).toBe(true);
  });
});

describe('worker threads', () => {
  // Adopts the main thread's listening fd, arms it, reports once it accepted
  // a connection, then waits to be terminated.
  const WORKER = `
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');
const { ListenSocket } = require(workerData.dist);
const listener = ListenSocket.adopt(workerData.fd);
listener.arm((fds) => {
  for (const fd of fds) new net.Socket({ fd }).destroy();
  parentPort.postMessage({ fd: listener.fd });
});
parentPort.postMessage({ ready: true });
`;

  test('a terminated worker with an armed, adopted listener closes its fd; the socket lives on', async () => {
    const original = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const link = fdTarget(original.fd)!;
    const { port } = original.address();
    const worker = new Worker(WORKER, { eval: true, workerData: { dist: requireDist(), fd: original.fd } });
    const exited = new Promise<number>((resolve, reject) => {
      worker.on('error', reject);
      worker.on('exit', resolve);
    });
    let workerFd: number | undefined;
    worker.on('message', (message: { ready?: boolean; fd?: number }) => {
      if (message.ready === true) opened.raw(port);
      if (message.fd !== undefined && workerFd === undefined) {
        workerFd = message.fd;
        void worker.terminate();
      }
    });
    expect(await exited).toBe(1);
    expect(workerFd).toBeGreaterThan(2);
    expect(countOpen(link)).toBe(1);
    expect(epollRegistrations(link)).toEqual([]);

    // The main thread's copy still listens and accepts.
    const client = opened.raw(port);
    await acceptExactly(original, opened, 1);
    await waitFor('client connected', () => client.connected);
    expect(client.errors).toEqual([]);
  });
});
