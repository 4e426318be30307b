// The addon's AF_UNIX listener: openUnix (bind, chmod, listen; CLOEXEC and
// non-blocking), its queue through sock_diag (UNIX_DIAG_RQLEN), its name,
// and the kernel behaviour the Unix-domain close relies on: shutdown(SHUT_RD)
// refuses new connects and leaves the queue acceptable; close() resets it.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadBinding, type NativeHandle, type NativeSystemError } from '../../src/core/native.js';
import { O_CLOEXEC, O_NONBLOCK, Opened, fdFlags, fdTarget, waitFor } from '../helpers/kit.js';

const binding = loadBinding();
const opened = new Opened();
afterEach(() => opened.dispose());

let dir: string;
beforeEach(() => {
  dir = opened.tempDir('gl-native-unix-');
});

function open(name: string, backlog = 16, mode = -1): NativeHandle {
  const handle = binding.openUnix(name, backlog, mode);
  opened.cleanup(() => handle.close());
  return handle;
}

function thrown(call: () => unknown): NativeSystemError {
  try {
    call();
  } catch (error) {
    return error as NativeSystemError;
  }
  throw new Error('did not throw');
}

/** `count` clients connected to `name` (the kernel completes AF_UNIX connects by itself). */
async function connectMany(name: string, count: number): Promise<net.Socket[]> {
  const sockets = Array.from({ length: count }, () => opened.track(net.connect({ path: name })));
  await Promise.all(sockets.map((socket) => new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))));
  return sockets;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) fs.closeSync(fd);
}

describe('openUnix', () => {
  test('a listening CLOEXEC, non-blocking socket bound to the path, mode applied before listen', () => {
    const socketPath = path.join(dir, 'a.sock');
    const handle = open(socketPath, 16, 0o640);
    expect(fdTarget(handle.fd)).toMatch(/^socket:\[\d+\]$/);
    expect(fdFlags(handle.fd) & O_NONBLOCK).toBe(O_NONBLOCK);
    expect(fdFlags(handle.fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    const stat = fs.lstatSync(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o640);
    expect(handle.address()).toBe(socketPath);
  });

  test('queueDepth(): the connections queued and the backlog, from sock_diag', async () => {
    const socketPath = path.join(dir, 'q.sock');
    const handle = open(socketPath, 7);
    expect(handle.queueDepth()).toEqual({ queued: 0, backlog: 7 });
    await connectMany(socketPath, 5);
    expect(handle.queueDepth()).toEqual({ queued: 5, backlog: 7 });
    const { fds, error } = handle.sweep(false);
    closeAll(fds);
    expect({ accepted: fds.length, error }).toEqual({ accepted: 5, error: null });
    expect(handle.queueDepth()).toEqual({ queued: 0, backlog: 7 });
  });

  test('an abstract name: no file, the exact name bound', async () => {
    const name = `\0gl-native-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const handle = open(name);
    expect(handle.address()).toBe(name);
    expect(fs.readdirSync(dir)).toEqual([]);
    // unixConnect uses the name's own length, as this bind did.
    fs.closeSync(binding.unixConnect(name, 1000));
    await waitFor('the connection queued', () => handle.queueDepth().queued === 1);
    closeAll(handle.sweep(false).fds);
  });

  test('a socket renamed after bind keeps the name it was bound to (getsockname)', () => {
    const temporary = path.join(dir, '.tmp.sock');
    const handle = open(temporary);
    fs.renameSync(temporary, path.join(dir, 'final.sock'));
    expect(handle.address()).toBe(temporary);
    fs.closeSync(binding.unixConnect(path.join(dir, 'final.sock'), 1000));
    expect(handle.queueDepth().queued).toBe(1);
    closeAll(handle.sweep(false).fds);
  });

  test('errors are Node-shaped: code, errno, syscall, address; a failed bind unlinks nothing', () => {
    const socketPath = path.join(dir, 'taken.sock');
    open(socketPath);
    const inUse = thrown(() => binding.openUnix(socketPath, 16, -1));
    expect(inUse).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: socketPath });
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(thrown(() => binding.openUnix(path.join(dir, 'no', 'such.sock'), 16, -1))).toMatchObject({ code: 'ENOENT', syscall: 'bind' });
    expect(thrown(() => binding.openUnix(`/${'x'.repeat(120)}`, 16, -1))).toMatchObject({ code: 'ENAMETOOLONG' });
    expect(thrown(() => binding.openUnix(path.join(dir, 'a\0b'), 16, -1))).toMatchObject({ code: 'EINVAL' });
    const abstract = `\0gl-native-taken-${process.pid}`;
    open(abstract);
    expect(thrown(() => binding.openUnix(abstract, 16, -1))).toMatchObject({ code: 'EADDRINUSE', address: `@gl-native-taken-${process.pid}` });
    // The failures made no file.
    expect(fs.readdirSync(dir)).toEqual(['taken.sock']);
  });

  test('close() leaves the file: unlinking is the caller’s decision', () => {
    const socketPath = path.join(dir, 'left.sock');
    binding.openUnix(socketPath, 16, -1).close();
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(thrown(() => binding.unixConnect(socketPath, 0))).toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('the kernel behaviour the close relies on', () => {
  test('shutdown(SHUT_RD): new connects are refused, everything queued is still accepted', async () => {
    const socketPath = path.join(dir, 'gate.sock');
    const handle = open(socketPath);
    const clients = await connectMany(socketPath, 4);
    handle.shutdown();
    expect(thrown(() => binding.unixConnect(socketPath, 0))).toMatchObject({ code: 'ECONNREFUSED' });
    expect(handle.queueDepth().queued).toBe(4);
    const { fds, error } = handle.sweep(true);
    expect({ accepted: fds.length, error }).toEqual({ accepted: 4, error: null });
    // Every client's connection is alive: the server side reaches it.
    for (const [index, fd] of fds.entries()) fs.writeSync(fd, `hello ${index}`);
    await Promise.all(clients.map((client) => new Promise((resolve) => client.once('data', resolve))));
    closeAll(fds);
    expect(clients.every((client) => client.errored === null)).toBe(true);
  });

  test('close() with connections queued resets them (ECONNRESET)', async () => {
    const socketPath = path.join(dir, 'reset.sock');
    const handle = binding.openUnix(socketPath, 16, -1);
    const clients = await connectMany(socketPath, 3);
    const errors = clients.map((client) => new Promise<string | undefined>((resolve) => client.once('error', (e: NodeJS.ErrnoException) => resolve(e.code))));
    handle.close();
    expect(await Promise.all(errors)).toEqual(['ECONNRESET', 'ECONNRESET', 'ECONNRESET']);
  });
});
