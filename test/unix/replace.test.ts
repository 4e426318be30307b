// A restart on a Unix-domain path: `replace: true` binds a temporary name,
// listens, and renames it over the path, so clients connecting in a loop
// meanwhile never find nobody; the replaced listener then drains and leaves
// the path (no longer its file) alone. A restart that closes first and
// listens after makes the same clients fail.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { listen, type ServerListener } from '../../src/index.js';
import { Opened, nextEvent } from '../helpers/kit.js';
import { unixLoop } from '../helpers/load.js';

const ROUNDS = 10;
const CONCURRENCY = 16;

const opened = new Opened();
afterEach(() => opened.dispose());

/** A server answering "pong\n" to each connection's first bytes, counting them. */
function pongServer(counts: { served: number; errors: string[] }): net.Server {
  return net.createServer((socket) => {
    socket.on('error', (error: NodeJS.ErrnoException) => counts.errors.push(error.code ?? error.message));
    socket.once('data', () => {
      counts.served++;
      socket.end('pong\n');
    });
  });
}

test(`${ROUNDS} replacements under a connect loop: not one client fails, the path stays`, async () => {
  const socketPath = path.join(opened.tempDir('gl-unix-replace-'), 'app.sock');
  const counts = { served: 0, errors: [] as string[] };
  let current: ServerListener = opened.listener(await listen(pongServer(counts), { path: socketPath, mode: 0o660 }));
  const clients = await unixLoop(opened, socketPath, { concurrency: CONCURRENCY, maxMs: 120_000 });

  for (let round = 0; round < ROUNDS; round++) {
    // Load on the current listener before it is replaced.
    await nextEvent(current, 'connection');
    const next = opened.listener(await listen(pongServer(counts), { path: socketPath, mode: 0o660, replace: true }));
    expect(fs.lstatSync(socketPath).mode & 0o777).toBe(0o660);
    // The new listener has clients before the old one closes: new connects
    // resolve the path to it.
    await nextEvent(next, 'connection');
    const previous = current;
    current = next;
    const report = await opened.close(previous);
    expect(report.destroyed).toBe(0);
    // The old listener's close left its successor's file in place.
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
  }
  await nextEvent(current, 'connection');
  const result = await clients.stop();
  expect(result.failures).toEqual({});
  expect(result.connectErrors).toEqual({});
  expect(counts.errors).toEqual([]);
  expect(result.answered).toBe(counts.served);
  expect(result.answered).toBeGreaterThan(ROUNDS);
  // The last listener's file is its own: its close unlinks it.
  await opened.close(current);
  expect(fs.existsSync(socketPath)).toBe(false);
  // No temporary name was left behind.
  expect(fs.readdirSync(path.dirname(socketPath))).toEqual([]);
});

test('a restart that closes, then listens again, leaves clients with nobody to connect to (what replace prevents)', async () => {
  const socketPath = path.join(opened.tempDir('gl-unix-restart-'), 'app.sock');
  const counts = { served: 0, errors: [] as string[] };
  let current = opened.listener(await listen(pongServer(counts), { path: socketPath }));
  const clients = await unixLoop(opened, socketPath, { concurrency: CONCURRENCY, maxMs: 120_000 });
  for (let round = 0; round < 3; round++) {
    await nextEvent(current, 'connection');
    await opened.close(current);
    // Clients keep trying meanwhile: each finds no file.
    await new Promise((resolve) => setTimeout(resolve, 100));
    current = opened.listener(await listen(pongServer(counts), { path: socketPath }));
  }
  await nextEvent(current, 'connection');
  const result = await clients.stop();
  expect(result.failures).toEqual({});
  expect(result.connectErrors.ENOENT ?? 0).toBeGreaterThan(0);
});
