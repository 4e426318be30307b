import { EventEmitter } from 'node:events';
import { guarded } from './core/callout.js';
import { ListenerError } from './core/errors.js';
import type { HandshakeRequest, ListenSocket, Pending } from './core/listen-socket.js';
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
  /**
   * Milliseconds phase 1 waits at most, from the close, for TCP handshakes
   * still in SYN_RECV and for the clients of an overflowed queue before the
   * socket is shut down. Each handshake is waited for only until its SYN-ACK
   * has been retransmitted once and a round trip has passed: a live client
   * completes by then, a spoofed SYN or a vanished client never does. New
   * clients wait on the SYN gate meanwhile, and are refused once it ends.
   * @default 3000
   */
  handshakeWait?: number;
}

/** What a close did. */
export interface CloseReport {
  /** Connections in the accept queue when `close()` began. */
  queuedAtClose: number;
  /** Handshakes in SYN_RECV when `close()` began. */
  handshakingAtClose: number;
  /**
   * Handshakes given up on: still in SYN_RECV after their SYN-ACK was
   * retransmitted without an answer, or when `handshakeWait` ran out.
   */
  handshakesAbandoned: number;
  /**
   * Whether the SYN gate was on during phase 1. `false` when attaching it
   * failed (a locked or unreadable socket filter): the queue was then swept
   * without it, and the error was reported.
   */
  gated: boolean;
  /**
   * Connections still queued when accept(2) kept failing until the final
   * deadline and the socket was closed anyway (the kernel reset them).
   */
  queueLost: number;
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
const DEFAULT_OVERFLOW_WINDOW_MS = 1000;
const DEFAULT_HANDSHAKE_WAIT_MS = 3000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
// sock_diag walks every socket of the namespace: while handshakes are in
// SYN_RECV, look again at this pace, not faster.
const HANDSHAKE_RECHECK_MS = 200;
// A live client answers a retransmitted SYN-ACK within one round trip.
const HANDSHAKE_ANSWER_MS = 500;
// The sweep accepts until EAGAIN and shuts down in one synchronous step, so
// that the clients arriving after it are refused at once; what it accepted
// is wrapped and handed to the server this many at a time, one loop
// iteration apart, so a long queue never stalls the loop (with TLS, a
// thousand connections wrapped at once is hundreds of milliseconds).
const WRAP_BATCH = 128;

const EDGES: Record<ListenerState, readonly ListenerState[]> = {
  accepting: ['draining'],
  draining: ['accepting', 'closed'],
  closed: [],
};

/**
 * Phase 1, step by step. `handshakes`: handshakes in SYN_RECV may still
 * complete into the queue. `overflow`: the queue was full at the close, so
 * clients the kernel knows nothing of may still get in; wait for a quiet
 * window. `sweeping`: accept in batches until at most one batch is queued,
 * sweep and shut down in one step. `swept`: phase 2 may run.
 */
type DrainPhase = 'handshakes' | 'overflow' | 'sweeping' | 'swept';

/** What accept(2) is armed for: nothing, no limit, or at most that many connections. */
type Arming = 'off' | 'unlimited' | number;

interface Drain {
  readonly promise: Promise<CloseReport>;
  readonly resolve: (report: CloseReport) => void;
  readonly reject: (error: Error) => void;
  readonly report: CloseReport;
  readonly started: number;
  phase: DrainPhase;
  /** The queue was full at the close and no quiet `overflowWindow` has passed yet. */
  overflowed: boolean;
  readonly overflowWindow: number;
  /** Handshakes seen in SYN_RECV, by key: when one still there stops being worth waiting for. */
  readonly handshakes: Map<string, number>;
  /** Connections the drain ended or destroyed (not counted as served). */
  readonly cut: WeakSet<object>;
  readonly timers: NodeJS.Timeout[];
  /** The one pending look of phase 1 (handshakes, overflow window, sweep retry). */
  next: NodeJS.Timeout | undefined;
}

/**
 * A listening socket feeding a server, closed in two phases: phase 1 stops new
 * SYNs, accepts what the kernel already queued and shuts the socket down with
 * the queue empty; phase 2 closes the fd when the last connection is released.
 *
 * Events: `'connection'` (each accepted connection, before the server sees it),
 * `'draining'`, `'accepting'` (a drain aborted by `resume()`), `'close'` (once),
 * `'error'`. What a listener of these throws never stops the close: it is
 * rethrown on its own tick.
 */
export class Listener<C extends Connection = Connection> extends EventEmitter {
  readonly #socket: ListenSocket;
  readonly #sink: ConnectionSink<C>;
  readonly #connections = new Set<C>();
  // Counted connections of the batch being admitted that the sink has not been
  // handed yet. A drain that starts meanwhile (a close() from a handler) does
  // not own them: the accept path delivers them in draining mode.
  readonly #undelivered = new Set<C>();
  // Accepted fds not yet wrapped: counted, and owned, from the accept on.
  readonly #unwrapped: number[] = [];
  #wrapScheduled = false;
  #state: ListenerState = 'accepting';
  #paused = false;
  #arming: Arming = 'off';
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
    return this.#state === 'closed' ? 0 : 1 + this.#connections.size + this.#unwrapped.length;
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
      if (drain.phase === 'swept') this.#socket.listen();
      this.#drain = undefined;
      this.#closing = undefined;
      this.#clearTimers(drain);
      if (drain.report.gated) {
        try {
          this.#socket.gate(false);
        } catch (error) {
          this.#emitError(error as Error);
        }
      }
      guarded(() => this.#sink.draining(false, this.#connections));
      drain.reject(new ListenerError('ERR_CLOSE_ABORTED', 'The close was aborted by resume()'));
      this.#transition('accepting');
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
   * promise; it settles before `'close'` is emitted.
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
    const handshakeWait = validateInteger(
      'options.handshakeWait',
      options.handshakeWait ?? DEFAULT_HANDSHAKE_WAIT_MS,
      0,
      MAX_TIMEOUT_MS,
    );

    const drain = this.#newDrain(overflowWindow);
    this.#drain = drain;
    this.#closing = drain.promise;
    // The deadlines exist before any user code runs: whatever it does, the
    // close ends by them.
    drain.timers.push(
      setTimeout(() => this.#deadline(drain), timeout),
      setTimeout(() => this.#forceDeadline(drain), timeout + forceTimeout),
      setTimeout(() => this.#endWaits(drain), handshakeWait),
    );
    // The gate goes on before anything slow: from here no new SYN enters the queue.
    try {
      this.#socket.gate(true);
      drain.report.gated = true;
    } catch (error) {
      this.#emitError(error as Error);
    }
    const { queued, backlog } = this.#socket.pending();
    drain.report.queuedAtClose = queued;
    drain.overflowed = queued >= backlog && overflowWindow > 0;
    const open = [...this.#connections].filter((connection) => !this.#undelivered.has(connection));
    drain.report.openAtClose = this.#connections.size + this.#unwrapped.length;
    const firstLook = this.#handshakesToWaitFor(drain);
    drain.report.handshakingAtClose = drain.handshakes.size;

    this.#transition('draining');
    // A 'draining' listener may have called resume() (or destroyed everything).
    if (!this.#isCurrent(drain)) return drain.promise;
    guarded(() => this.#sink.draining(true, open));
    if (!this.#isCurrent(drain)) return drain.promise;
    this.#waitForHandshakes(drain, firstLook);
    return drain.promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state !== 'closed') await this.close();
  }

  #newDrain(overflowWindow: number): Drain {
    let resolve!: (report: CloseReport) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<CloseReport>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return {
      promise,
      resolve,
      reject,
      started: performance.now(),
      phase: 'handshakes',
      overflowed: false,
      overflowWindow,
      handshakes: new Map(),
      cut: new WeakSet(),
      timers: [],
      next: undefined,
      report: {
        queuedAtClose: 0,
        handshakingAtClose: 0,
        handshakesAbandoned: 0,
        gated: false,
        queueLost: 0,
        openAtClose: 0,
        accepted: 0,
        served: 0,
        ended: 0,
        destroyed: 0,
        durationMs: 0,
      },
    };
  }

  /** Whether `drain` is still the close under way (user code may have aborted or finished it). */
  #isCurrent(drain: Drain): boolean {
    return this.#drain === drain;
  }

  #schedule(drain: Drain, delay: number, step: () => void): void {
    clearTimeout(drain.next);
    drain.next = setTimeout(() => {
      drain.next = undefined;
      if (this.#isCurrent(drain)) step();
    }, delay);
  }

  // Phase 1, `handshakes`. A handshake in SYN_RECV completes into the queue
  // once the client's ACK gets in; a shutdown before then would reset a client
  // that may already be ESTABLISHED (its ACK dropped by a full queue). So while
  // sock_diag shows any worth waiting for, keep accepting and look again.
  #waitForHandshakes(drain: Drain, wait: number | undefined): void {
    if (drain.phase !== 'handshakes') return;
    if (wait !== undefined) {
      this.#updateArming();
      this.#schedule(drain, wait, () => this.#waitForHandshakes(drain, this.#handshakesToWaitFor(drain)));
      return;
    }
    if (drain.overflowed) {
      this.#awaitOverflowQuiet(drain);
      return;
    }
    this.#sweep(drain);
  }

  // Milliseconds until the next look, or undefined when no handshake in
  // SYN_RECV is worth waiting for. Each is waited for until its next SYN-ACK
  // retransmit plus a round trip: a live client's ACK gets in then (the gate
  // passes it, and the queue has room while we accept). One still there after
  // that is a spoofed SYN or a client that vanished; it stays in SYN_RECV for
  // about a minute, and waiting for it would hold every close to its deadline.
  #handshakesToWaitFor(drain: Drain): number | undefined {
    let requests: HandshakeRequest[];
    try {
      requests = this.#socket.handshakeRequests();
    } catch (error) {
      // Without sock_diag the close goes on without waiting for handshakes.
      this.#emitError(error as Error);
      return undefined;
    }
    const now = performance.now();
    let next: number | undefined;
    for (const request of requests) {
      let giveUpAt = drain.handshakes.get(request.key);
      if (giveUpAt === undefined) {
        giveUpAt = now + request.expiresMs + HANDSHAKE_ANSWER_MS;
        drain.handshakes.set(request.key, giveUpAt);
      }
      if (giveUpAt > now) next = Math.min(next ?? HANDSHAKE_RECHECK_MS, giveUpAt - now);
    }
    if (next === undefined) drain.report.handshakesAbandoned = requests.length;
    return next === undefined ? undefined : Math.max(1, Math.ceil(next));
  }

  // Phase 1, `overflow`: keep accepting until a whole window passes with no
  // new connection, then look at the handshakes again.
  #awaitOverflowQuiet(drain: Drain): void {
    drain.phase = 'overflow';
    this.#updateArming();
    const acceptedAtMark = drain.report.accepted;
    this.#schedule(drain, drain.overflowWindow, () => {
      if (drain.phase !== 'overflow') return;
      if (drain.report.accepted === acceptedAtMark) drain.overflowed = false;
      drain.phase = 'handshakes';
      this.#waitForHandshakes(drain, this.#handshakesToWaitFor(drain));
    });
  }

  // `handshakeWait` or the deadline: phase 1 waits no longer.
  #endWaits(drain: Drain): void {
    if (!this.#isCurrent(drain) || (drain.phase !== 'handshakes' && drain.phase !== 'overflow')) return;
    drain.overflowed = false;
    drain.report.handshakesAbandoned = this.#handshakesLeft();
    this.#sweep(drain);
  }

  #handshakesLeft(): number {
    try {
      return this.#socket.handshakeRequests().length;
    } catch {
      return 0;
    }
  }

  // Phase 1, `sweeping`: accept until EAGAIN and shut down in one native
  // step; with the gate on, nothing new reaches the queue meanwhile.
  #sweep(drain: Drain): void {
    if (!this.#isCurrent(drain) || drain.phase === 'swept') return;
    drain.phase = 'sweeping';
    clearTimeout(drain.next);
    drain.next = undefined;
    const { fds, error } = this.#socket.sweep({ shutdown: true });
    // accept(2) on a socket that no longer listens (another owner shut it
    // down) fails with EINVAL: its queue is gone, there is nothing to sweep.
    if (error === null || (error as { code?: string }).code === 'EINVAL') {
      drain.phase = 'swept';
      this.#arming = 'off';
      if (error !== null) this.#socket.disarm();
      this.#admit(fds);
      this.#maybeFinish();
      return;
    }
    // An accept failed (EMFILE, ENFILE…): the queue is not empty, so there was
    // no shutdown. Keep accepting as descriptors free up, and sweep again; the
    // final deadline ends it if it never succeeds.
    this.#admit(fds);
    this.#emitError(error);
    if (!this.#isCurrent(drain)) return;
    this.#updateArming();
    this.#schedule(drain, HANDSHAKE_RECHECK_MS, () => this.#sweep(drain));
  }

  #deadline(drain: Drain): void {
    if (!this.#isCurrent(drain)) return;
    // Handshakes that never completed cannot wait any longer.
    this.#endWaits(drain);
    this.#wrapAll();
    for (const connection of this.#connections) {
      drain.report.ended++;
      drain.cut.add(connection);
      guarded(() => this.#sink.endGently(connection));
    }
  }

  #forceDeadline(drain: Drain): void {
    if (!this.#isCurrent(drain)) return;
    if (drain.phase !== 'swept') {
      // accept(2) kept failing: what is still queued cannot be accepted, and
      // the close must end. Closing the socket resets it; the report says so.
      clearTimeout(drain.next);
      drain.phase = 'swept';
      drain.report.queueLost = this.#socket.pending().queued;
      this.#arming = 'off';
      this.#socket.disarm();
    }
    this.#wrapAll();
    for (const connection of this.#connections) {
      drain.report.destroyed++;
      drain.cut.add(connection);
      guarded(() => connection.destroy());
    }
    this.#maybeFinish();
  }

  #onAccept = (fds: number[]): void => {
    this.#admit(fds);
    this.#updateArming();
  };

  // Every accepted fd is counted at once, before any user code runs; it is
  // wrapped and delivered now, or in a later batch.
  #admit(fds: number[]): void {
    if (fds.length === 0) return;
    const drain = this.#drain;
    if (drain !== undefined) drain.report.accepted += fds.length;
    for (const fd of fds) this.#unwrapped.push(fd);
    this.#wrapBatch();
  }

  #wrapBatch(): void {
    // Every fd of the batch becomes a counted connection before any user code runs.
    const admitted: C[] = [];
    for (const fd of this.#unwrapped.splice(0, WRAP_BATCH)) {
      let connection: C;
      try {
        connection = this.#sink.wrap(fd);
      } catch (error) {
        this.#emitError(error as Error);
        continue;
      }
      this.#connections.add(connection);
      this.#undelivered.add(connection);
      connection.once('close', () => this.#release(connection));
      admitted.push(connection);
    }
    if (this.#unwrapped.length > 0 && !this.#wrapScheduled) {
      this.#wrapScheduled = true;
      setImmediate(() => {
        this.#wrapScheduled = false;
        this.#wrapBatch();
      });
    }
    for (const connection of admitted) {
      guarded(() => this.emit('connection', connection));
      // Asked for each connection, after the listener's own event: a close()
      // from a handler earlier in the batch makes the rest of it stragglers.
      this.#undelivered.delete(connection);
      guarded(() => this.#sink.deliver(connection, this.#drain !== undefined));
    }
    // A wrap that failed (EMFILE making the socket) may have released the last one.
    if (admitted.length === 0) this.#maybeFinish();
  }

  #wrapAll(): void {
    while (this.#unwrapped.length > 0) this.#wrapBatch();
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
    if (drain === undefined || drain.phase !== 'swept') return;
    if (this.#connections.size > 0 || this.#unwrapped.length > 0) return;
    this.#drain = undefined;
    this.#clearTimers(drain);
    this.#arming = 'off';
    this.#socket.close();
    guarded(() => this.#sink.closed());
    drain.report.durationMs = performance.now() - drain.started;
    guarded(() => {
      const protocol = this.#sink.stats?.();
      if (protocol !== undefined) drain.report.protocol = protocol;
    });
    this.#transition('closed', () => drain.resolve(drain.report));
  }

  #clearTimers(drain: Drain): void {
    for (const timer of drain.timers) clearTimeout(timer);
    clearTimeout(drain.next);
    drain.next = undefined;
  }

  // Armed while accepting (unless paused, or the server's connection limit is
  // reached: then clients wait in the kernel queue instead of being dropped),
  // and while draining until the sweep, whatever the limit; never after.
  #wantedArming(): Arming {
    const drain = this.#drain;
    if (drain !== undefined) return drain.phase === 'swept' ? 'off' : 'unlimited';
    if (this.#state !== 'accepting' || this.#paused) return 'off';
    const limit = this.#sink.limit();
    if (limit === undefined) return 'unlimited';
    const room = limit - this.#connections.size;
    return room > 0 ? room : 'off';
  }

  #updateArming(): void {
    const wanted = this.#wantedArming();
    if (wanted === this.#arming) return;
    this.#arming = wanted;
    if (wanted === 'off') this.#socket.disarm();
    else this.#socket.arm(this.#onAccept, wanted === 'unlimited' ? undefined : { limit: wanted });
  }

  // The one place the state changes. `settle` runs between the change and the
  // event, so a promise tied to the change is settled whatever a listener does.
  #transition(next: ListenerState, settle?: () => void): void {
    if (!EDGES[this.#state].includes(next)) {
      throw new Error(`Invalid listener transition ${this.#state} -> ${next}`);
    }
    this.#state = next;
    settle?.();
    guarded(() => this.emit(next === 'closed' ? 'close' : next));
  }

  #emitError(error: Error): void {
    if (this.listenerCount('error') > 0) guarded(() => this.emit('error', error));
    else process.emitWarning(error);
  }

  #assertNotClosed(operation: string): void {
    if (this.#state === 'closed') {
      throw new ListenerError('ERR_LISTENER_CLOSED', `Cannot ${operation}: the listener is closed`);
    }
  }
}
