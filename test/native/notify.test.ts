// notify(): sd_notify(3)'s datagram, to a path or to an abstract name ('@').
// The receiver is a python3 child (Node's dgram has no AF_UNIX) bound to both
// and printing each datagram as JSON.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { sdNotify } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';
import { Resources, openFds } from './helpers.js';

const binding = loadBinding();
const resources = new Resources();
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-notify-'));
});

afterEach(() => {
  resources.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const RECEIVER = `
import json, select, socket, sys
by_path = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
by_path.bind(sys.argv[1])
abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
abstract.bind('\\0' + sys.argv[2])
print(json.dumps({'ready': True}), flush=True)
while True:
    readable, _, _ = select.select([by_path, abstract], [], [], 30)
    if not readable:
        break
    for s in readable:
        print(json.dumps({'to': 'path' if s is by_path else 'abstract', 'data': s.recv(65536).decode()}), flush=True)
`;

interface Datagram {
  to: 'path' | 'abstract';
  data: string;
}

/** The receiver, and the datagrams it reported so far. */
async function receiver(socketPath: string, name: string): Promise<{ child: ChildProcess; received: () => Promise<Datagram[]> }> {
  const child = resources.child(spawn('python3', ['-c', RECEIVER, socketPath, name], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const lines: unknown[] = [];
  const waiters: (() => void)[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, newline)));
      buffered = buffered.slice(newline + 1);
    }
    for (const wake of waiters.splice(0)) wake();
  });
  const until = (count: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (lines.length >= count) resolve();
        else waiters.push(check);
      };
      child.once('exit', (code) => reject(new Error(`receiver exited (${code}) after ${JSON.stringify(lines)}`)));
      check();
    });
  await until(1);
  return {
    child,
    received: async () => {
      await until(3);
      return lines.slice(1) as Datagram[];
    },
  };
}

describe('notify', () => {
  test('a path and an abstract name (@) each get exactly the message', async () => {
    const socketPath = path.join(dir, 'notify');
    const name = `graceful-listener-test-${process.pid}`;
    const { received } = await receiver(socketPath, name);
    const before = openFds();
    binding.notify(socketPath, 'READY=1\nSTATUS=to the path');
    binding.notify(`@${name}`, 'STATUS=to the abstract name');
    expect(openFds()).toEqual(before);
    expect(await received()).toEqual([
      { to: 'path', data: 'READY=1\nSTATUS=to the path' },
      { to: 'abstract', data: 'STATUS=to the abstract name' },
    ]);
  });

  test('sdNotify sends to NOTIFY_SOCKET', async () => {
    const socketPath = path.join(dir, 'notify');
    const name = `graceful-listener-test-${process.pid}-sd`;
    const { received } = await receiver(socketPath, name);
    const saved = process.env.NOTIFY_SOCKET;
    try {
      process.env.NOTIFY_SOCKET = socketPath;
      expect(sdNotify('READY=1')).toBe(true);
      process.env.NOTIFY_SOCKET = `@${name}`;
      expect(sdNotify('STOPPING=1')).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
    expect(await received()).toEqual([
      { to: 'path', data: 'READY=1' },
      { to: 'abstract', data: 'STOPPING=1' },
    ]);
  });

  test('no receiver: ENOENT (path) or ECONNREFUSED (abstract name); too long: ENAMETOOLONG; nothing left open', () => {
    const before = openFds();
    expect(() => binding.notify(path.join(dir, 'missing'), 'READY=1')).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'sendto' }),
    );
    expect(() => binding.notify(`@graceful-listener-test-${process.pid}-none`, 'READY=1')).toThrow(
      expect.objectContaining({ code: 'ECONNREFUSED', syscall: 'sendto' }),
    );
    expect(() => binding.notify(`/${'x'.repeat(108)}`, 'READY=1')).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }));
    expect(() => binding.notify(`@${'x'.repeat(108)}`, 'READY=1')).toThrow(expect.objectContaining({ code: 'ENAMETOOLONG' }));
    expect(openFds()).toEqual(before);
  });
});
