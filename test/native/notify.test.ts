// notify(): sd_notify(3)'s datagram, to a path or to an abstract name ('@').
// The receiver is a python3 child (Node's dgram has no AF_UNIX) bound to both
// and printing each datagram as JSON.
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { sdNotify } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';
import { Opened, openFds } from '../helpers/kit.js';
import { notifyReceiver } from '../helpers/python.js';

const binding = loadBinding();
const opened = new Opened();
afterEach(() => opened.dispose());

let dir: string;
beforeEach(() => {
  dir = opened.tempDir('gl-notify-');
});

describe('notify', () => {
  test('a path and an abstract name (@) each get exactly the message', async () => {
    const socketPath = path.join(dir, 'notify');
    const name = `graceful-listener-test-${process.pid}`;
    const receiver = await notifyReceiver(opened, [socketPath, `@${name}`]);
    const before = openFds();
    binding.notify(socketPath, 'READY=1\nSTATUS=to the path');
    binding.notify(`@${name}`, 'STATUS=to the abstract name');
    expect(openFds()).toEqual(before);
    expect(await receiver.until(2)).toEqual([
      { to: 'path', data: 'READY=1\nSTATUS=to the path' },
      { to: 'abstract', data: 'STATUS=to the abstract name' },
    ]);
  });

  test('sdNotify sends to NOTIFY_SOCKET', async () => {
    const socketPath = path.join(dir, 'notify');
    const name = `graceful-listener-test-${process.pid}-sd`;
    const receiver = await notifyReceiver(opened, [socketPath, `@${name}`]);
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
    expect(await receiver.until(2)).toEqual([
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
