// Shared by the listen(server) integration tests: bounded waits, a registry of
// everything a test opens (closed in afterEach), and small loopback clients.
// Every wait is a hang bound (a number of tries or an AbortSignal.timeout),
// never a timing assertion.
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Listener } from '../../src/index.js';

export const HOST = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` up to `tries` times, `intervalMs` apart; throws with `what` if it never holds. */
export async function waitFor(
  what: string | (() => string),
  check: () => boolean | Promise<boolean>,
  { tries = 500, intervalMs = 20 }: { tries?: number; intervalMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(intervalMs);
  }
  if (!(await check())) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}

/** `events.once` with a hang bound. */
export function nextEvent<T extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  boundMs = 15_000,
): Promise<T> {
  return once(emitter, event, { signal: AbortSignal.timeout(boundMs) }) as Promise<T>;
}

/** A raw client socket with everything that happened to it recorded. */
export interface RawClient {
  socket: net.Socket;
  connected: boolean;
  data: string;
  errors: Error[];
  ended: boolean;
  closed: boolean;
}

// Server-side sockets of a test whose clients were destroyed (at the end, or
// midway through a failure) may see ECONNRESET: what a test asserts is what
// the clients saw, so these must not surface as uncaught errors.
function ignoreErrors(socket: net.Socket): void {
  socket.on('error', () => {});
}

interface Closable {
  destroy(): unknown;
}

/** Everything a test opens; `dispose()` (from afterEach) closes what the test left open. */
export class Opened {
  readonly #listeners = new Set<Listener<net.Socket>>();
  readonly #servers = new Set<net.Server>();
  readonly #closables = new Set<Closable>();

  listener<L extends Listener<net.Socket>>(listener: L): L {
    this.#listeners.add(listener);
    listener.on('connection', ignoreErrors);
    return listener;
  }

  /** A server listened by Node itself (a reference, or one to adopt). */
  server<S extends net.Server>(server: S): S {
    this.#servers.add(server);
    server.on('connection', ignoreErrors);
    return server;
  }

  track<T extends Closable>(thing: T): T {
    this.#closables.add(thing);
    return thing;
  }

  raw(port: number, host = HOST): RawClient {
    const client: RawClient = {
      socket: this.track(net.connect({ port, host })),
      connected: false,
      data: '',
      errors: [],
      ended: false,
      closed: false,
    };
    client.socket.setEncoding('latin1');
    client.socket.on('connect', () => (client.connected = true));
    client.socket.on('data', (chunk: string) => (client.data += chunk));
    client.socket.on('error', (error) => client.errors.push(error));
    client.socket.on('end', () => (client.ended = true));
    client.socket.on('close', () => (client.closed = true));
    return client;
  }

  async dispose(): Promise<void> {
    for (const thing of this.#closables) thing.destroy();
    this.#closables.clear();
    for (const listener of this.#listeners) {
      if (listener.state !== 'closed') await listener.close({ timeout: 0, forceTimeout: 0 }).catch(() => {});
    }
    this.#listeners.clear();
    for (const server of this.#servers) {
      (server as Partial<http.Server>).closeAllConnections?.();
      if (server.listening) await new Promise((resolve) => server.close(resolve));
    }
    this.#servers.clear();
  }
}

export interface Reply {
  status: number;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request on a fresh connection (`agent: false`, so `Connection: close`);
 * resolves when the response ended and the socket closed.
 */
export function request(
  port: number,
  options: { secure?: boolean; path?: string; servername?: string } & http.RequestOptions = {},
): Promise<Reply> {
  const { secure = false, path = '/', ...rest } = options;
  const client = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      { host: HOST, port, path, agent: false, rejectUnauthorized: false, ...rest, signal: AbortSignal.timeout(15_000) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('error', reject);
        res.on('end', () => {
          const reply = { status: res.statusCode ?? 0, httpVersion: res.httpVersion, headers: res.headers, body };
          if (res.socket.closed) resolve(reply);
          else res.socket.once('close', () => resolve(reply));
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The server side's OS fd of an accepted socket (test-only peek at `socket._handle.fd`). */
export function serverFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no fd');
  return fd;
}

/** `server.getConnections()` as a promise. */
export function connections(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

/** Listens with Node's own `server.listen()` on an ephemeral loopback port. */
export async function nodeListen<S extends net.Server>(server: S, backlog?: number): Promise<number> {
  server.listen({ host: HOST, port: 0, ...(backlog !== undefined ? { backlog } : {}) });
  await nextEvent(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}
