import { EventEmitter } from 'node:events';
import { ListenerError } from './core/errors.js';
import type { ListenSocket, Pending } from './core/listen-socket.js';
import type { NativeAddress } from './core/native.js';
import { validateInteger, validateObject } from './core/validate.js';

export type ListenerState = 'accepting' | 'draining' | 'closed';

/** A connection as the listener sees it: it only needs to know when it ends. */
export interface Connection {
  once(event: 'close', listener: () => void): unknown;
  destroy(): void;
}

/**
 * Where accepted connections go: a Node server (see `server/feed.ts`) or a
 * test double. The listener owns counting and the drain; the sink owns the
 * protocol.
 */
export interface ConnectionSink<C extends Connection = Connection> {
  /** Makes a connection of an accepted fd, which it owns from then on. */
  wrap(fd: number): C;
  /** Hands the connection to the server; `draining` when a close is under way. */
  deliver(connection: C, draining: boolean): void;
  /**
   * A close began (`true`, with the connections open at that moment) or was
   * aborted by `resume()` (`false`).
   */
  draining(on: boolean, connections: Iterable<C>): void;
  /** The deadline passed: end with FIN after reading what the peer sent. */
  endGently(connection: C): void;
  /** The listener is closed: detach from the server. */
  closed(): void;
  /** Connections the sink may not exceed, or `undefined` for no limit. */
  limit(): number | undefined;
  /** Per-protocol figures for the close report. */
  stats?(): Record<string, unknown>;
}

/** Options for {@link Listener.close}. */
export interface CloseOptions {
  /**
   * Milliseconds until connections still open are ended gently (FIN after
   * their receive buffer is read empty).
   * @default 30000
   */
  timeout?: number;
  /**
   * Milliseconds after `timeout` until connections still open are destroyed.
   * @default 5000
   */
  forceTimeout?: number;
  /**
   * When the accept queue was full at the close, the kernel was dropping
   * final ACKs (or answering with SYN cookies): clients that are ESTABLISHED
   * on their side, unknown to the server, complete only when they retransmit.
   * The socket then keeps accepting, SYN gate on, until this many
   * milliseconds pass without a new connection (bounded by `timeout`),
   * instead of shutting down on them.
   * @default 1000
   */
  overflowWindow?: number;
}

/** What a close did. */
export interface CloseReport {
  /** Connections in the accept queue when `close()` began. */
  queuedAtClose: number;
  /** Handshakes in SYN_RECV when `close()` began. */
  handshakingAtClose: number;
  /** Connections already open when `close()` began. */
  openAtClose: number;
  /** Connections accepted while draining: the queue, finished handshakes, stragglers. */
  accepted: number;
  /** Connections that finished on their own while draining. */
  served: number;
  /** Connections ended gently at `timeout`. */
  ended: number;
  /** Connections destroyed at `timeout + forceTimeout`. */
  destroyed: number;
  /** Milliseconds from `close()` to `'close'`. */
  durationMs: number;
  /** What the protocol drains did (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY, drain hooks). */
  protocol?: Record<string, unknown>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_FORCE_TIMEOUT_MS = 5_000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
// sock_diag walks every socket of the namespace: while handshakes are in
// SYN_RECV (their SYN-ACK is retransmitted after about 1 s), look again at
// this pace, not faster.
const HANDSHAKE_RECHECK_MS = 200;
const DEFAULT_OVERFLOW_WINDOW_MS = 1000;

// A throwing 'connection' handler (the listener's or the server's) must not
// strand the rest of a batch or a close in progress: the error is rethrown on
// its own tick, an uncaught exception as in Node's own accept path.
function guarded(handler: () => void): void {
  try {
    handler();
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}

const EDGES: Record<ListenerState, readonly ListenerState[]> = {
  accepting: ['draining'],
  draining: ['accepting', 'closed'],
  closed: [],
};

interface Drain {
  readonly promise: Promise<CloseReport>;
  readonly resolve: (report: CloseReport) => void;
  readonly reject: (error: Error) => void;
  readonly report: CloseReport;
  readonly started: number;
  /** The queue is swept and the socket shut down: phase 2 may run. */
  swept: boolean;
  /** The queue was full at the close: wait out `overflowWindow` before the sweep. */
  overflowed: boolean;
  readonly overflowWindow: number;
  /** Connections the drain ended or destroyed (not counted as served). */
  readonly cut: WeakSet<object>;
  timers: NodeJS.Timeout[];
}

/**
 * A listening socket feeding a server, closed in two phases: phase 1 stops new
 * SYNs, accepts what the kernel already queued and shuts the socket down with
 * the queue empty; phase 2 closes the fd when the last connection is released.
 *
 * Events: `'connection'` (each accepted connection, before the server sees it),
 * `'draining'`, `'accepting'` (a drain aborted by `resume()`), `'close'` (once),
 * `'error'`.
 */
export class Listener<C extends Connection = Connection> extends EventEmitter {
  readonly #socket: ListenSocket;
  readonly #sink: ConnectionSink<C>;
  readonly #connections = new Set<C>();
  // Counted connections of the batch being admitted that the sink has not been
  // handed yet. A drain that starts meanwhile (a close() from a handler) does
  // not own them: the accept path delivers them in draining mode.
  readonly #undelivered = new Set<C>();
  #state: ListenerState = 'accepting';
  #paused = false;
  #armedLimit: number | undefined | null = null;
  #drain: Drain | undefined;
  // The promise of the close that reached (or is reaching) 'closed'.
  #closing: Promise<CloseReport> | undefined;

  constructor(socket: ListenSocket, sink: ConnectionSink<C>) {
    super();
    this.#socket = socket;
    this.#sink = sink;
    socket.on('error', (error: Error) => this.#emitError(error));
    this.#updateArming();
  }

  /** `'accepting'`, `'draining'` (close under way) or `'closed'`. */
  get state(): ListenerState {
    return this.#state;
  }

  /**
   * NGINX Unit's `lev->count`: 1 for the listener itself plus each accepted
   * connection not yet closed (TLS handshakes included); 0 once closed.
   */
  get count(): number {
    return this.#state === 'closed' ? 0 : 1 + this.#connections.size;
  }

  /** Whether `pause()` is in force. */
  get paused(): boolean {
    return this.#paused;
  }

  address(): NativeAddress {
    this.#assertNotClosed('address');
    return this.#socket.address();
  }

  /** The kernel accept queue; see {@link ListenSocket.pending}. */
  pending(options?: { handshakes?: boolean }): Pending {
    this.#assertNotClosed('pending');
    return this.#socket.pending(options);
  }

  /** The listening fd (the listener owns it). */
  get fd(): number {
    return this.#socket.fd;
  }

  /** Stops accepting; the fd stays open and clients wait in the kernel queue. */
  pause(): void {
    this.#assertNotClosed('pause');
    this.#paused = true;
    this.#updateArming();
  }

  /**
   * Accepts again after `pause()`. While draining, aborts the drain: the SYN
   * gate opens, the socket listens again and the state returns to
   * `'accepting'`; the pending `close()` rejects with `ERR_CLOSE_ABORTED`.
   */
  resume(): void {
    this.#assertNotClosed('resume');
    this.#paused = false;
    const drain = this.#drain;
    if (drain !== undefined) {
      // First, since it can fail (the port taken meanwhile): the drain then goes on.
      if (drain.swept) this.#socket.listen();
      this.#drain = undefined;
      this.#closing = undefined;
      for (const timer of drain.timers) clearTimeout(timer);
      this.#socket.gate(false);
      this.#sink.draining(false, this.#connections);
      this.#transition('accepting');
      drain.reject(new ListenerError('ERR_CLOSE_ABORTED', 'The close was aborted by resume()'));
    }
    this.#updateArming();
  }

  /** Whether an armed listener keeps the event loop alive. */
  ref(on = true): void {
    if (this.#state !== 'closed') this.#socket.ref(on);
  }

  /**
   * Two-phase close. Phase 1: the SYN gate stops new handshakes, everything
   * the kernel already queued (and handshakes already in SYN_RECV) is accepted
   * and served in draining mode, then the socket is shut down with its queue
   * empty, so no client whose handshake completed is reset. Phase 2: the fd is
   * closed when the last connection is released. Every call returns the same
   * promise.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    if (this.#closing !== undefined) return this.#closing;
    validateObject('options', options);
    const timeout = validateInteger('options.timeout', options.timeout ?? DEFAULT_TIMEOUT_MS, 0, MAX_TIMEOUT_MS);
    const forceTimeout = validateInteger(
      'options.forceTimeout',
      options.forceTimeout ?? DEFAULT_FORCE_TIMEOUT_MS,
      0,
      MAX_TIMEOUT_MS,
    );
    const overflowWindow = validateInteger(
      'options.overflowWindow',
      options.overflowWindow ?? DEFAULT_OVERFLOW_WINDOW_MS,
      0,
      MAX_TIMEOUT_MS,
    );

    // The gate goes on before anything slow: from here no new SYN enters the queue.
    this.#socket.gate(true);
    const pending = this.#depth();
    let resolve!: (report: CloseReport) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<CloseReport>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const drain: Drain = {
      promise,
      resolve,
      reject,
      started: performance.now(),
      swept: false,
      overflowed: pending.queued >= pending.backlog && overflowWindow > 0,
      overflowWindow,
      cut: new WeakSet(),
      timers: [],
      report: {
        queuedAtClose: pending.queued,
        handshakingAtClose: pending.handshaking ?? 0,
        openAtClose: this.#connections.size,
        accepted: 0,
        served: 0,
        ended: 0,
        destroyed: 0,
        durationMs: 0,
      },
    };
    this.#drain = drain;
    this.#closing = promise;
    this.#transition('draining');
    this.#sink.draining(true, [...this.#connections].filter((connection) => !this.#undelivered.has(connection)));
    this.#sweep(drain, pending.handshaking ?? 0);
    if (this.#drain === drain) {
      drain.timers.push(
        setTimeout(() => this.#deadline(drain), timeout),
        setTimeout(() => this.#forceDeadline(drain), timeout + forceTimeout),
      );
    }
    return promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state !== 'closed') await this.close();
  }

  // Phase 1. Handshakes still in SYN_RECV complete into the queue once their
  // SYN-ACK is retransmitted; a shutdown before then would reset them (and
  // their client may already be ESTABLISHED). So while sock_diag sees any,
  // keep accepting and look again later; once none is left, accept until
  // EAGAIN and shut down in one native step.
  #sweep(drain: Drain, handshaking: number): void {
    // A re-check timer can outlive the sweep the deadline forced.
    if (this.#drain !== drain || drain.swept) return;
    if (handshaking > 0) {
      this.#updateArming();
      drain.timers.push(
        setTimeout(() => {
          if (this.#drain !== drain) return;
          this.#sweep(drain, this.#depth().handshaking);
        }, HANDSHAKE_RECHECK_MS),
      );
      return;
    }
    if (drain.overflowed) {
      this.#awaitOverflowQuiet(drain);
      return;
    }
    const { fds, error } = this.#socket.sweep({ shutdown: true });
    if (error !== null) {
      // An accept failed (EMFILE, ENFILE…): the queue is not empty, so there
      // was no shutdown. Keep accepting as descriptors free up, sweep again.
      this.#admit(fds);
      this.#emitError(error);
      this.#updateArming();
      drain.timers.push(setTimeout(() => this.#sweep(drain, this.#depth().handshaking), HANDSHAKE_RECHECK_MS));
      return;
    }
    drain.swept = true;
    this.#armedLimit = null;
    this.#admit(fds);
    this.#maybeFinish();
  }

  // The accept queue and the SYN_RECV handshakes on the port (sock_diag). If
  // the kernel refuses the sock_diag query, the close goes on without waiting
  // for handshakes rather than failing with the SYN gate already on.
  #depth(): Pending & { handshaking: number } {
    try {
      const pending = this.#socket.pending({ handshakes: true });
      return { ...pending, handshaking: pending.handshaking ?? 0 };
    } catch (error) {
      this.#emitError(error as Error);
      return { ...this.#socket.pending(), handshaking: 0 };
    }
  }

  // Keep accepting until a whole window passes with no new connection, then
  // sweep as usual (handshakes in SYN_RECV are counted again first).
  #awaitOverflowQuiet(drain: Drain): void {
    this.#updateArming();
    const acceptedAtMark = drain.report.accepted;
    drain.timers.push(
      setTimeout(() => {
        if (this.#drain !== drain || drain.swept) return;
        if (drain.report.accepted === acceptedAtMark) drain.overflowed = false;
        this.#sweep(drain, this.#depth().handshaking);
      }, drain.overflowWindow),
    );
  }

  #deadline(drain: Drain): void {
    if (this.#drain !== drain) return;
    // Handshakes that never completed cannot wait any longer.
    if (!drain.swept) {
      drain.overflowed = false;
      this.#sweep(drain, 0);
    }
    for (const connection of this.#connections) {
      drain.report.ended++;
      drain.cut.add(connection);
      this.#sink.endGently(connection);
    }
  }

  #forceDeadline(drain: Drain): void {
    if (this.#drain !== drain) return;
    for (const connection of this.#connections) {
      drain.report.destroyed++;
      drain.cut.add(connection);
      connection.destroy();
    }
  }

  #onAccept = (fds: number[]): void => {
    this.#admit(fds);
    this.#updateArming();
  };

  #admit(fds: number[]): void {
    const draining = this.#drain !== undefined;
    // Every fd becomes a counted connection before any user code runs.
    const admitted: C[] = [];
    for (const fd of fds) {
      let connection: C;
      try {
        connection = this.#sink.wrap(fd);
      } catch (error) {
        this.#emitError(error as Error);
        continue;
      }
      this.#connections.add(connection);
      this.#undelivered.add(connection);
      if (draining) this.#drain!.report.accepted++;
      connection.once('close', () => this.#release(connection));
      admitted.push(connection);
    }
    for (const connection of admitted) {
      guarded(() => this.emit('connection', connection));
      // Asked for each connection, after the listener's own event: a close()
      // from a handler earlier in the batch makes the rest of it stragglers.
      this.#undelivered.delete(connection);
      guarded(() => this.#sink.deliver(connection, this.#drain !== undefined));
    }
  }

  #release(connection: C): void {
    if (!this.#connections.delete(connection)) return;
    this.#undelivered.delete(connection);
    const drain = this.#drain;
    if (drain !== undefined) {
      if (!drain.cut.has(connection)) drain.report.served++;
      this.#maybeFinish();
    } else if (this.#state === 'accepting') {
      this.#updateArming();
    }
  }

  // Phase 2: the release of the last connection closes the fd.
  #maybeFinish(): void {
    const drain = this.#drain;
    if (drain === undefined || !drain.swept || this.#connections.size > 0) return;
    this.#drain = undefined;
    for (const timer of drain.timers) clearTimeout(timer);
    this.#socket.close();
    this.#transition('closed');
    this.#sink.closed();
    drain.report.durationMs = performance.now() - drain.started;
    const protocol = this.#sink.stats?.();
    if (protocol !== undefined) drain.report.protocol = protocol;
    drain.resolve(drain.report);
  }

  // Armed while accepting (unless paused, or the server's connection limit is
  // reached: then clients wait in the kernel queue instead of being dropped),
  // and while draining until the sweep; never after.
  #updateArming(): void {
    let wanted: number | undefined | null = null;
    if (this.#state === 'accepting' && !this.#paused) {
      const limit = this.#sink.limit();
      wanted = limit === undefined ? undefined : Math.max(0, limit - this.#connections.size);
      if (wanted === 0) wanted = null;
    } else if (this.#drain !== undefined && !this.#drain.swept) {
      wanted = undefined;
    }
    if (wanted === this.#armedLimit) return;
    this.#armedLimit = wanted;
    if (wanted === null) this.#socket.disarm();
    else this.#socket.arm(this.#onAccept, wanted === undefined ? undefined : { limit: wanted });
  }

  #transition(next: ListenerState): void {
    if (!EDGES[this.#state].includes(next)) {
      throw new Error(`Invalid listener transition ${this.#state} -> ${next}`);
    }
    this.#state = next;
    if (next === 'closed') this.#armedLimit = null;
    this.emit(next === 'closed' ? 'close' : next);
  }

  #emitError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error);
  }

  #assertNotClosed(operation: string): void {
    if (this.#state === 'closed') {
      throw new ListenerError('ERR_LISTENER_CLOSED', `Cannot ${operation}: the listener is closed`);
    }
  }
}

