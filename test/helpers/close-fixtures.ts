// Shared by test/close: bounded waits, a throw-away TLS certificate, and a
// registry of everything a test opened so that afterEach closes it and awaits
// each listener's 'close'. Every wait has a fixed number of tries; nothing
// here asserts on elapsed time.
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Listener } from '../../src/index.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` up to `tries` times, `intervalMs` apart; throws with `what` if it never holds. */
export async function waitFor(
  what: string | (() => string),
  check: () => boolean,
  { tries = 250, intervalMs = 20 }: { tries?: number; intervalMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await sleep(intervalMs);
  }
  if (!check()) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
}

/** Resolves with the first emission of `event`, or rejects after `tries × 20 ms` (a hang bound). */
export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string, tries = 1000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, onEvent);
      reject(new Error(`no '${event}' event`));
    }, tries * 20);
    const onEvent = (value: T): void => {
      clearTimeout(timer);
      resolve(value);
    };
    emitter.once(event, onEvent);
  });
}

/**
 * Blocks the event loop (1 ms waits, no yielding) until `check` holds or
 * `maxIterations` waits passed; returns whether it held.
 */
export function blockUntil(check: () => boolean, maxIterations = 10_000): boolean {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < maxIterations; i++) {
    if (check()) return true;
    Atomics.wait(cell, 0, 0, 1);
  }
  return check();
}

let cert: { key: string; cert: string } | undefined;

/** A self-signed P-256 certificate for localhost / 127.0.0.1, made once per process. */
export function testCertificate(): { key: string; cert: string } {
  if (cert !== undefined) return cert;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-close-cert-'));
  try {
    const keyPath = path.join(dir, 'key.pem');
    const certPath = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-days', '2', '-keyout', keyPath, '-out', certPath,
      ],
      { stdio: 'ignore' },
    );
    cert = { key: fs.readFileSync(keyPath, 'utf8'), cert: fs.readFileSync(certPath, 'utf8') };
    return cert;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** What /proc/self/fd/<fd> points to, e.g. "socket:[12345]"; undefined if not open. */
export function fdTarget(fd: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Whether any fd of this process points to `target`. */
export function anyFdPointsTo(target: string): boolean {
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    if (fdTarget(Number(entry)) === target) return true;
  }
  return false;
}

/** The error code a socket operation ended with, or undefined. */
export function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Everything a test opens. `dispose()` (from afterEach) destroys clients,
 * kills children, closes servers that listened themselves, and closes each
 * listener that is still open — awaiting its 'close' in every case.
 */
export class Opened {
  readonly #listeners: Listener<net.Socket>[] = [];
  readonly #servers: net.Server[] = [];
  readonly #sockets: net.Socket[] = [];
  readonly #children: ChildProcess[] = [];
  readonly #closes = new Map<Listener<net.Socket>, Promise<void>>();

  listener<L extends Listener<net.Socket>>(listener: L): L {
    this.#listeners.push(listener);
    this.#closes.set(
      listener,
      new Promise((resolve) => {
        if (listener.state === 'closed') resolve();
        else listener.once('close', () => resolve());
      }),
    );
    return listener;
  }

  /** A server that called server.listen() itself. */
  server<S extends net.Server>(server: S): S {
    this.#servers.push(server);
    return server;
  }

  socket<S extends net.Socket>(socket: S): S {
    this.#sockets.push(socket);
    return socket;
  }

  child<C extends ChildProcess>(child: C): C {
    this.#children.push(child);
    return child;
  }

  /** The promise of the listener's 'close' event (registered when it was added). */
  closed(listener: Listener<net.Socket>): Promise<void> {
    const closed = this.#closes.get(listener);
    if (closed === undefined) throw new Error('listener not registered');
    return closed;
  }

  async dispose(): Promise<void> {
    for (const child of this.#children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const socket of this.#sockets.splice(0)) socket.destroy();
    for (const server of this.#servers.splice(0)) {
      if (server.listening) server.close();
      (server as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    }
    const listeners = this.#listeners.splice(0);
    for (const listener of listeners) {
      // A drain a failed test left behind may have long deadlines: restart it with none.
      if (listener.state === 'draining') listener.resume();
      if (listener.state !== 'closed') listener.close({ timeout: 0, forceTimeout: 0 }).catch(() => {});
    }
    await Promise.all(listeners.map((listener) => this.closed(listener)));
    this.#closes.clear();
  }
}
