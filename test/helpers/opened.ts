// The one registry of what a test opened. afterEach calls dispose(): it kills
// the child processes, destroys the clients, closes raw fds, ListenSockets
// and the servers that listened themselves, destroys every listener still
// open, and awaits each listener's 'close' (bounded), then runs the cleanup
// callbacks (temp dirs among them) — so nothing a test opened outlives it.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { CloseReport, Listener, ListenSocket } from '../../src/index.js';
import { HOST, RawClient, codeOf, type ConnectOptions } from './clients.js';
import { BOUND_MS, within } from './wait.js';

interface Destroyable {
  destroy(): unknown;
}

// Server-side sockets of a test whose clients were destroyed (at the end, or
// midway through a failure) may see ECONNRESET: what a test asserts is what
// the clients saw, so these must not surface as uncaught errors.
function ignoreErrors(socket: net.Socket): void {
  socket.on('error', () => {});
}

export class Opened {
  readonly #listeners = new Map<Listener<net.Socket>, Promise<void>>();
  readonly #listenSockets = new Set<ListenSocket>();
  readonly #servers = new Map<net.Server, Set<net.Socket>>();
  readonly #tracked = new Set<Destroyable>();
  readonly #children = new Set<ChildProcess>();
  readonly #fds = new Set<number>();
  readonly #cleanups: (() => unknown)[] = [];

  /** A listener from listen() or adopt(); its 'close' is awaited at dispose. */
  listener<L extends Listener<net.Socket>>(listener: L): L {
    this.#listeners.set(
      listener,
      listener.state === 'closed' ? Promise.resolve() : new Promise((resolve) => listener.once('close', () => resolve())),
    );
    listener.on('connection', ignoreErrors);
    return listener;
  }

  /** A native ListenSocket (closing one twice is harmless). */
  listenSocket<T extends ListenSocket>(socket: T): T {
    this.#listenSockets.add(socket);
    return socket;
  }

  /** A server that called server.listen() itself (or may: its connections are closed with it). */
  server<S extends net.Server>(server: S): S {
    const connections = new Set<net.Socket>();
    this.#servers.set(server, connections);
    server.on('connection', (socket: net.Socket) => {
      ignoreErrors(socket);
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
    });
    return server;
  }

  /** Anything destroyed at dispose: client sockets, RawClients, agents, HTTP/2 sessions. */
  track<T extends Destroyable>(thing: T): T {
    this.#tracked.add(thing);
    return thing;
  }

  child<C extends ChildProcess>(child: C): C {
    this.#children.add(child);
    return child;
  }

  /** A raw fd (an accepted connection) the test owns. */
  fd(fd: number): number {
    this.#fds.add(fd);
    return fd;
  }

  /** The fd now belongs to something else (a net.Socket, or it was closed). */
  release(fd: number): void {
    this.#fds.delete(fd);
  }

  /** Wraps an accepted fd in a net.Socket, which then owns it. */
  adoptFd(fd: number): net.Socket {
    this.release(fd);
    return this.track(new net.Socket({ fd, readable: true, writable: true }));
  }

  /** Runs at dispose, after everything else, the last registered first. */
  cleanup(step: () => unknown): void {
    this.#cleanups.push(step);
  }

  /** A fresh directory in the system's temp dir, removed at dispose. */
  tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.cleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A RawClient connected to `port`, destroyed at dispose. */
  raw(port: number, options?: ConnectOptions): RawClient {
    return this.track(RawClient.connect(port, options));
  }

  /** Connects once: 'connected' (then destroyed), the error's code, or 'pending' after `boundMs`. */
  connectOutcome(port: number, host = HOST, boundMs = BOUND_MS): Promise<string> {
    const socket = this.track(net.connect({ port, host }));
    const outcome = new Promise<string>((resolve) => {
      socket.on('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.on('error', (error) => resolve(codeOf(error) ?? error.message));
    });
    return within(outcome, 'a connect outcome', boundMs).catch(() => 'pending');
  }

  /** The listener's 'close' event (bounded). */
  closed(listener: Listener<net.Socket>): Promise<void> {
    const closed = this.#listeners.get(listener);
    if (closed === undefined) throw new Error('listener not registered');
    return within(closed, "the listener's 'close'");
  }

  /** The report of the close under way (`closing`), once the listener has emitted 'close' too (bounded). */
  async settled(listener: Listener<net.Socket>, closing: Promise<CloseReport>): Promise<CloseReport> {
    const report = await within(closing, 'close()');
    await this.closed(listener);
    return report;
  }

  /** close() and the listener's 'close' event, together. */
  close(listener: Listener<net.Socket>, options?: Parameters<Listener['close']>[0]): Promise<CloseReport> {
    return this.settled(listener, listener.close(options));
  }

  async dispose(): Promise<void> {
    for (const child of this.#children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.#children.clear();
    for (const thing of this.#tracked) thing.destroy();
    this.#tracked.clear();
    for (const fd of this.#fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // Already closed by the test.
      }
    }
    this.#fds.clear();
    for (const socket of this.#listenSockets) socket.close();
    this.#listenSockets.clear();
    const closing: Promise<unknown>[] = [];
    for (const [server, connections] of this.#servers) {
      for (const socket of connections) socket.destroy();
      (server as Partial<http.Server>).closeAllConnections?.();
      if (server.listening) closing.push(new Promise((resolve) => server.close(resolve)));
    }
    this.#servers.clear();
    // Forgotten first, so one listener that never closes fails this test only.
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const [listener, closed] of listeners) {
      // Cuts a close under way short too: its deadlines may be long.
      if (listener.state !== 'closed') listener.destroy().catch(() => {});
      closing.push(closed);
    }
    try {
      await within(Promise.all(closing), "every listener's and server's 'close' in afterEach");
    } finally {
      for (const step of this.#cleanups.splice(0).reverse()) await step();
    }
  }
}

/** The protocol part of a close report, typed for the assertions. */
export interface ProtocolReport {
  http?: { closedAfterResponse: number; endedIdle: number };
  http2?: { sessions: number };
  drainHooks: number;
}

export function protocolOf(report: CloseReport): ProtocolReport {
  if (report.protocol === undefined) throw new Error('the close report has no protocol figures');
  return report.protocol as unknown as ProtocolReport;
}
