import fs from 'node:fs';
import { EventEmitter } from 'node:events';
import { guarded, reportUncaught, withEmitter } from './core/callout.js';
import { channels } from './core/diagnostics.js';
import { ListenerError } from './core/errors.js';
import { migratesRequests, type HandshakeRequest, type ListenSocket, type Pending } from './core/listen-socket.js';
import type { NativeAddress } from './core/native.js';
import { validateInteger, validateObject } from './core/validate.js';
import { DrainTally, Generation, type Connection, type ConnectionSink, type DrainReport } from './generation.js';

export type { Connection, ConnectionSink, DrainReport } from './generation.js';

export type ListenerState = 'accepting' | 'draining' | 'closed';

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

/** What a close did: the socket's phase 1, and every generation's connections. */
export interface CloseReport extends DrainReport {
  /**
   * `'close'`: the two-phase close of a socket this process alone holds.
   * `'retire'`: the socket is shared with another process (handed over, or
   * systemd's), so it was left alone — not gated, swept or shut down, its
   * queue living on in the other process — and only this listener's fd was
   * closed once its connections were done.
   */
  mode: 'close' | 'retire';
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
   * How an SO_REUSEPORT member with siblings closed, or null for a socket
   * alone on its port. `'migrated'`: `net.ipv4.tcp_migrate_req` is on, so the
   * shutdown moved its queue and half-open handshakes to a sibling.
   * `'steered'`: every new SYN was steered to the sibling bound last
   * (`SO_ATTACH_REUSEPORT_CBPF`) instead of gated — the reuseport hash would
   * send a gated client's retransmits back to this member — then the queue
   * was swept as usual.
   */
  reuseport: 'steered' | 'migrated' | null;
  /**
   * Connections still queued when accept(2) kept failing until the final
   * deadline and the socket was closed anyway (the kernel reset them).
   */
  queueLost: number;
}

/** Options for {@link Listener.replaceSink}. */
export interface RetireOptions {
  /**
   * Milliseconds until the replaced generation's connections still open are
   * ended gently.
   * @default 30000
   */
  timeout?: number;
  /**
   * Milliseconds after `timeout` until they are destroyed.
   * @default 5000
   */
  forceTimeout?: number;
}

/** Options for {@link Listener.expedite}. */
export interface ExpediteOptions {
  /**
   * Milliseconds from now until the connections ended gently now are
   * destroyed.
   * @default 0
   */
  forceTimeout?: number;
}

/** A snapshot of a listener, from {@link Listener.stats}. */
export interface ListenerStats {
  state: ListenerState;
  /** Whether `pause()` is in force. */
  paused: boolean;
  /** {@link Listener.count}: 1 for the listener plus its open connections; 0 once closed. */
  count: number;
  /** Connections accepted since the listener was made. */
  accepted: number;
  /** Open connections of each generation, the oldest (replaced, draining) first, the current one last. */
  active: number[];
  /** Connections in the kernel accept queue (TCP_INFO); 0 once closed. */
  queued: number;
  /** The queue's cap, min(backlog, somaxconn); 0 once closed. */
  backlog: number;
  /** Connections accepted after the close began: the queue it swept, finished handshakes, stragglers. */
  servedWhileDraining: number;
  /** Connections ended gently by a deadline (a close's, a retirement's, `expedite()`). */
  ended: number;
  /** Connections destroyed by a deadline or by `destroy()`. */
  destroyed: number;
}

/**
 * What is published on each `node:diagnostics_channel` channel, by name
 * (each prefixed `graceful-listener:`). Nothing is built when a channel has
 * no subscriber.
 */
export interface ListenerChannels {
  /** The listener was given its first server (sink) and accepts. */
  listen: { listener: Listener };
  /** `pause()` stopped accepting. */
  pause: { listener: Listener };
  /** `resume()` accepts again; `aborted`: it aborted a drain. */
  resume: { listener: Listener; aborted: boolean };
  /** A close began (state `'draining'`). */
  draining: { listener: Listener };
  /** The fd is closed (state `'closed'`), with the close's report. */
  close: { listener: Listener; report: CloseReport };
  /** A new server (sink) is current; `retired` settles with the replaced one's report. */
  replace: { listener: Listener; retired: Promise<DrainReport> };
  /** The listener retired for a successor process (handover). */
  handover: { listener: Listener; name: string; pid: number; uid: number };
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
 * window. `sweeping`: accept until EAGAIN and shut down in one step, retried
 * while accept(2) fails. `swept`: phase 2 may run.
 */
type DrainPhase = 'handshakes' | 'overflow' | 'sweeping' | 'swept';

/** What accept(2) is armed for: nothing, no limit, or at most that many connections. */
type Arming = 'off' | 'unlimited' | number;

/** The listener's close under way. */
interface Drain {
  readonly promise: Promise<CloseReport>;
  readonly resolve: (report: CloseReport) => void;
  readonly reject: (error: Error) => void;
  readonly mode: 'close' | 'retire';
  /** The socket's side of the report; the connections' side is the tally's. */
  readonly socketReport: Omit<CloseReport, keyof DrainReport>;
  readonly tally: DrainTally;
  phase: DrainPhase;
  /** The queue was full at the close and no quiet `overflowWindow` has passed yet. */
  overflowed: boolean;
  readonly overflowWindow: number;
  /** Handshakes seen in SYN_RECV, by key: when one still there stops being worth waiting for. */
  readonly handshakes: Map<string, number>;
  readonly timers: NodeJS.Timeout[];
  /** The one pending look of phase 1 (handshakes, overflow window, sweep retry). */
  next: NodeJS.Timeout | undefined;
}

function validateDeadlines(options: { timeout?: number; forceTimeout?: number }): { timeout: number; forceTimeout: number } {
  return {
    timeout: validateInteger('options.timeout', options.timeout ?? DEFAULT_TIMEOUT_MS, 0, MAX_TIMEOUT_MS),
    forceTimeout: validateInteger('options.forceTimeout', options.forceTimeout ?? DEFAULT_FORCE_TIMEOUT_MS, 0, MAX_TIMEOUT_MS),
  };
}

/**
 * A listening socket feeding a server, closed in two phases: phase 1 stops new
 * SYNs, accepts what the kernel already queued and shuts the socket down with
 * the queue empty; phase 2 closes the fd when the last connection is released.
 *
 * The socket feeds one current generation (a sink: a Node server and its
 * protocol drains); `replace()` makes a new one current while the previous
 * one drains on its own, and the socket is never touched.
 *
 * Events: `'connection'` (each accepted connection, before the server sees it),
 * `'draining'`, `'accepting'` (a drain aborted by `resume()`), `'close'` (once),
 * `'error'`. What a listener of these throws never stops the close: it is
 * rethrown on its own tick.
 */
export class Listener<C extends Connection = Connection> extends EventEmitter {
  readonly #socket: ListenSocket;
  #current: Generation<C> | undefined;
  // The current generation and the replaced ones still draining.
  readonly #generations = new Set<Generation<C>>();
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
  #shared = false;
  #drain: Drain | undefined;
  // The promise of the close that reached (or is reaching) 'closed'.
  #closing: Promise<CloseReport> | undefined;
  // Lifetime figures for stats(); how each cut connection was cut, counted once per kind.
  // A tally that never finishes: every connection accepted, and each cut
  // one counted once per kind, as a drain's own tally counts them.
  readonly #lifetime = new DrainTally(0);
  #servedWhileDraining = 0;
  // What the listening socket passes on to each accepted one (Linux copies
  // TCP_NODELAY at accept): undefined while unknown (a shared socket, whose
  // other owner may change it).
  readonly #inherited: { noDelay: boolean | undefined } = { noDelay: undefined };
  // One 'close' handler for every connection, called with the connection as
  // `this` (EventEmitter's contract): no closure per connection.
  readonly #onConnectionClose = withEmitter((connection: C) => this.#released(connection));

  /**
   * Takes over `socket`. With `sink`, it is served at once; otherwise accept
   * is armed by {@link Listener.serve}.
   */
  constructor(socket: ListenSocket, sink?: ConnectionSink<C>) {
    super();
    this.#socket = socket;
    socket.on('error', (error: Error) => this.#emitError(error));
    if (sink !== undefined) this.serve(sink);
  }

  /** `'accepting'`, `'draining'` (close under way) or `'closed'`. */
  get state(): ListenerState {
    return this.#state;
  }

  /**
   * NGINX Unit's `lev->count`: 1 for the listener itself plus each accepted
   * connection not yet closed (TLS handshakes included), of every
   * generation; 0 once closed.
   */
  get count(): number {
    return this.#state === 'closed' ? 0 : 1 + this.#openConnections() + this.#unwrapped.length;
  }

  /** Whether `pause()` is in force. */
  get paused(): boolean {
    return this.#paused;
  }

  /** The TCP address; a Unix-domain listener has none and throws `ERR_UNIX_LISTENER` (see {@link Listener.path}). */
  address(): NativeAddress {
    this.#assertNotClosed('address');
    return this.#socket.address();
  }

  /** The path of a Unix-domain listener (a leading `'\0'`: abstract), or undefined for TCP. */
  get path(): string | undefined {
    return this.#socket.path;
  }

  /**
   * Whether the socket file at {@link Listener.path} is still this
   * listener's: false once another listener replaced it (`replace: true`) or
   * it was removed — the close then leaves the path alone — and for TCP and
   * abstract names.
   */
  ownsPath(): boolean {
    return this.#state !== 'closed' && this.#socket.ownsPath();
  }

  /** The kernel accept queue; see {@link ListenSocket.pending}. */
  pending(options?: { handshakes?: boolean }): Pending {
    this.#assertNotClosed('pending');
    return this.#socket.pending(options);
  }

  /**
   * A cheap snapshot for metrics: counters kept as connections come and go,
   * and the queue from one TCP_INFO getsockopt (see {@link Listener.pending};
   * no sock_diag). Callable in any state. On a Unix-domain listener the
   * queue is a sock_diag query (tens of µs), and its system error, should
   * it fail, is thrown.
   */
  stats(): ListenerStats {
    const closed = this.#state === 'closed';
    const { queued, backlog } = closed ? { queued: 0, backlog: 0 } : this.#socket.pending();
    const active: number[] = [];
    for (const generation of this.#generations) active.push(generation.connections.size);
    if (active.length > 0) active[active.length - 1]! += this.#unwrapped.length;
    return { state: this.#state, paused: this.#paused, count: this.count, active, queued, backlog, ...this.#lifetimeTotals() };
  }

  /** The listening fd (the listener owns it). */
  get fd(): number {
    return this.#socket.fd;
  }

  /** Whether another process holds this socket too (see {@link Listener.share}). */
  get shared(): boolean {
    return this.#shared;
  }

  /**
   * Records that another process holds this socket too (it was handed over,
   * received, or passed by systemd). From then on `close()` retires: it stops
   * accepting, drains this listener's connections and closes its own fd; it
   * never gates, sweeps or shuts down the shared socket — the filter and the
   * shutdown would act on the other owner's socket, and its queue is the
   * other owner's to serve. `share(false)`: the other process has closed
   * its fd, the socket is this listener's alone again.
   */
  share(on = true): void {
    this.#assertNotClosed('share');
    this.#shared = on;
    if (on) {
      // The other owner's connections inherit the socket's options too:
      // leave the kernel default to it, and set TCP_NODELAY per connection.
      if (this.#inherited.noDelay === true) this.#setListenerNoDelay(false);
      this.#inherited.noDelay = undefined;
    } else if (this.#current !== undefined) {
      this.#inheritNoDelay(this.#current.sink);
    }
  }

  /** Starts feeding `sink`, the first generation: accept is armed. */
  serve(sink: ConnectionSink<C>): void {
    this.#assertNotClosed('serve');
    if (this.#current !== undefined) {
      throw new ListenerError('ERR_LISTENER_SERVING', 'The listener already feeds a server; use replaceSink()');
    }
    this.#current = new Generation(sink);
    this.#generations.add(this.#current);
    this.#inheritNoDelay(sink);
    this.#updateArming();
    if (channels.listen.hasSubscribers) channels.listen.publish({ listener: this });
  }

  /**
   * From the next accepted connection on, the socket feeds `sink`. The
   * previous generation drains as in a close — its sink in draining mode,
   * ended gently at `timeout`, destroyed at `timeout + forceTimeout` — and is
   * closed when its last connection is gone; the socket is never gated,
   * swept or shut down. Resolves with the replaced generation's report.
   */
  replaceSink(sink: ConnectionSink<C>, options: RetireOptions = {}): Promise<DrainReport> {
    this.assertReplaceable();
    validateObject('options', options);
    const { timeout, forceTimeout } = validateDeadlines(options);
    const previous = this.#current;
    this.#current = new Generation(sink);
    this.#generations.add(this.#current);
    this.#inheritNoDelay(sink);
    this.#updateArming();
    const retired = previous === undefined ? Promise.resolve(new DrainTally(0).report) : this.#retire(previous, timeout, forceTimeout);
    if (channels.replace.hasSubscribers) channels.replace.publish({ listener: this, retired });
    return retired;
  }

  /** Throws the error `replaceSink()` would: the listener is closed or closing. */
  protected assertReplaceable(): void {
    this.#assertNotClosed('replace');
    if (this.#drain !== undefined) {
      throw new ListenerError('ERR_LISTENER_DRAINING', 'Cannot replace: the listener is closing');
    }
  }

  /**
   * The current sink's connection limit changed (a server's
   * `maxConnections` was set): accept again if there is room now, as Node
   * reads the limit at each accept.
   */
  refreshLimit(): void {
    if (this.#state !== 'closed') this.#updateArming();
  }

  /**
   * Counts `connection` in the current generation although this listener did
   * not accept it: one the server accepted itself before `adopt()`. It is
   * drained, ended and destroyed like the others, and holds phase 2 open.
   */
  include(connection: C): void {
    this.#assertNotClosed('include');
    const generation = this.#current;
    if (generation === undefined) throw new ListenerError('ERR_LISTENER_SERVING', 'Cannot include a connection before serve()');
    if (generation.connections.has(connection)) return;
    generation.connections.add(connection);
    connection.on('close', this.#onConnectionClose);
    guarded(() => generation.sink.include?.(connection));
  }

  /** Stops accepting; the fd stays open and clients wait in the kernel queue. */
  pause(): void {
    this.#assertNotClosed('pause');
    const was = this.#paused;
    this.#paused = true;
    this.#updateArming();
    if (!was && channels.pause.hasSubscribers) channels.pause.publish({ listener: this });
  }

  /**
   * Accepts again after `pause()`. While draining, aborts the drain: the SYN
   * gate opens, the socket listens again and the state returns to
   * `'accepting'`; the pending `close()` rejects with `ERR_CLOSE_ABORTED`.
   * Replaced generations go on draining.
   */
  resume(): void {
    this.#assertNotClosed('resume');
    const wasPaused = this.#paused;
    const drain = this.#drain;
    if (drain !== undefined && drain.mode === 'close' && this.#socket.path !== undefined) {
      // Its path is unlinked and the socket shut down for reading: nothing
      // brings it back (listen(2) does not undo the shutdown on AF_UNIX).
      throw new ListenerError('ERR_UNIX_LISTENER', 'Cannot resume a Unix-domain listener once its close began; listen() again on the path');
    }
    this.#paused = false;
    if (drain !== undefined) {
      // First, since it can fail (the port taken meanwhile): the drain then goes on.
      if (drain.phase === 'swept' && drain.mode === 'close') this.#socket.listen();
      this.#drain = undefined;
      this.#closing = undefined;
      this.#clearTimers(drain);
      try {
        if (drain.socketReport.gated) this.#socket.gate(false);
        // New SYNs were steered to a sibling: let the group hash again.
        if (drain.socketReport.reuseport === 'steered') this.#socket.steer(-1);
      } catch (error) {
        this.#emitError(error as Error);
      }
      this.#current?.stopDraining();
      drain.reject(new ListenerError('ERR_CLOSE_ABORTED', 'The close was aborted by resume()'));
      this.#transition('accepting');
    }
    this.#updateArming();
    if ((wasPaused || drain !== undefined) && channels.resume.hasSubscribers) {
      channels.resume.publish({ listener: this, aborted: drain !== undefined });
    }
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
   * closed when the last connection of every generation is released. Every
   * call returns the same promise; it settles before `'close'` is emitted.
   *
   * A Unix-domain listener has no SYN to gate: its path is unlinked (if its
   * file is still this listener's) and the socket shut down for reading,
   * which refuses new connects and keeps the queue acceptable; the queue is
   * then swept and served the same way.
   */
  close(options: CloseOptions = {}): Promise<CloseReport> {
    if (this.#closing !== undefined) return this.#closing;
    validateObject('options', options);
    const { timeout, forceTimeout } = validateDeadlines(options);
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
    return this.#startDrain({ timeout, forceTimeout, overflowWindow, handshakeWait });
  }

  /**
   * The abrupt close (undici's `destroy()`): no handshake is waited for, the
   * queue is swept and every connection of every generation destroyed now;
   * the fd closes once they are gone. A close under way is cut short. Every
   * call returns the same promise as `close()`.
   */
  destroy(): Promise<CloseReport> {
    const promise = this.#closing ?? this.#startDrain({ timeout: 0, forceTimeout: 0, overflowWindow: 0, handshakeWait: 0 });
    const drain = this.#drain;
    if (drain !== undefined) this.#forceDeadline(drain);
    return promise;
  }

  /**
   * Forces the close under way (a second SIGTERM): its deadlines move to
   * now. Phase 1 stops waiting for handshakes and sweeps the queue, every
   * connection still open, of every generation, is ended gently at once (FIN
   * after its receive buffer is read empty) and destroyed `forceTimeout`
   * milliseconds later. Without a close under way it starts one with these
   * deadlines. Every call returns the same promise as `close()`.
   */
  expedite(options: ExpediteOptions = {}): Promise<CloseReport> {
    validateObject('options', options);
    const forceTimeout = validateInteger('options.forceTimeout', options.forceTimeout ?? 0, 0, MAX_TIMEOUT_MS);
    const promise = this.#closing ?? this.#startDrain({ timeout: 0, forceTimeout, overflowWindow: 0, handshakeWait: 0 });
    const drain = this.#drain;
    if (drain === undefined) return promise;
    for (const timer of drain.timers) clearTimeout(timer);
    drain.timers.length = 0;
    drain.timers.push(setTimeout(() => this.#forceDeadline(drain), forceTimeout));
    this.#deadline(drain);
    return promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state !== 'closed') await this.close();
  }

  #startDrain(options: { timeout: number; forceTimeout: number; overflowWindow: number; handshakeWait: number }): Promise<CloseReport> {
    const drain = this.#newDrain(options.overflowWindow);
    this.#drain = drain;
    this.#closing = drain.promise;
    // The deadlines exist before any user code runs: whatever it does, the
    // close ends by them.
    drain.timers.push(
      setTimeout(() => this.#deadline(drain), options.timeout),
      // Each is at most 2^31 - 1 ms, their sum need not be: Node would clamp
      // an overflowing delay to 1 ms.
      setTimeout(() => this.#forceDeadline(drain), Math.min(options.timeout + options.forceTimeout, MAX_TIMEOUT_MS)),
    );
    let firstLook: number | undefined;
    const reuseport = drain.mode === 'retire' ? null : this.#reuseportPath();
    if (drain.mode === 'retire') {
      // Nothing to do on the socket: stop accepting, and phase 2 closes our fd.
      drain.phase = 'swept';
      drain.socketReport.queuedAtClose = this.#socket.pending().queued;
      this.#updateArming();
    } else if (reuseport === 'migrated') {
      // The kernel moves what is queued, and the handshakes in SYN_RECV, to
      // a sibling at the shutdown: nothing to wait for, nothing to sweep.
      drain.socketReport.reuseport = 'migrated';
      drain.socketReport.queuedAtClose = this.#socket.pending().queued;
      this.#socket.disarm();
      this.#socket.shutdown();
      drain.phase = 'swept';
      this.#arming = 'off';
    } else {
      drain.timers.push(setTimeout(() => this.#endWaits(drain), options.handshakeWait));
      // New SYNs stop first, before anything slow: steered to the sibling
      // bound last, or dropped by the gate.
      if (reuseport === 'steered') {
        try {
          this.#socket.steer(this.#socket.reusePortSiblings());
          drain.socketReport.reuseport = 'steered';
        } catch (error) {
          this.#emitError(error as Error);
        }
      }
      if (drain.socketReport.reuseport === null) {
        try {
          this.#socket.gate(true);
          drain.socketReport.gated = true;
        } catch (error) {
          this.#emitError(error as Error);
        }
      }
      const { queued, backlog } = this.#readQueue() ?? { queued: 0, backlog: Number.POSITIVE_INFINITY };
      drain.socketReport.queuedAtClose = queued;
      // A full AF_UNIX queue leaves nobody connected behind it: a connect
      // waiting for room is refused once the socket is gated.
      drain.overflowed = queued >= backlog && options.overflowWindow > 0 && this.#socket.path === undefined;
      firstLook = this.#handshakesToWaitFor(drain);
      drain.socketReport.handshakingAtClose = drain.handshakes.size;
    }

    this.#transition('draining');
    // A 'draining' listener may have called resume() (or destroy()).
    if (!this.#isCurrent(drain)) return drain.promise;
    for (const generation of [...this.#generations]) {
      generation.startDraining([...generation.connections].filter((connection) => !this.#undelivered.has(connection)));
      if (!this.#isCurrent(drain)) return drain.promise;
    }
    if (drain.phase === 'swept') this.#maybeFinish();
    else this.#waitForHandshakes(drain, firstLook);
    return drain.promise;
  }

  // The queue as the close reads it. On a Unix-domain socket that is a
  // sock_diag query, which can fail: the close then goes on without the
  // figure (the sweep accepts whatever is queued anyway), and says why.
  #readQueue(): Pending | undefined {
    try {
      return this.#socket.pending();
    } catch (error) {
      this.#emitError(error as Error);
      return undefined;
    }
  }

  // How an SO_REUSEPORT member leaves its group without resetting what the
  // hash sent it (DESIGN §2.5), or null when the socket is alone on its port.
  #reuseportPath(): 'steered' | 'migrated' | null {
    if (!this.#socket.reusePort) return null;
    let siblings: number;
    try {
      siblings = this.#socket.reusePortSiblings();
    } catch (error) {
      this.#emitError(error as Error);
      return null;
    }
    if (siblings === 0) return null;
    return migratesRequests() ? 'migrated' : 'steered';
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
      mode: this.#shared ? 'retire' : 'close',
      socketReport: { mode: this.#shared ? 'retire' : 'close', reuseport: null, queuedAtClose: 0, handshakingAtClose: 0, handshakesAbandoned: 0, gated: false, queueLost: 0 },
      tally: new DrainTally(this.#openConnections() + this.#unwrapped.length),
      phase: 'handshakes',
      overflowed: false,
      overflowWindow,
      handshakes: new Map(),
      timers: [],
      next: undefined,
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
    if (next === undefined) drain.socketReport.handshakesAbandoned = requests.length;
    return next === undefined ? undefined : Math.max(1, Math.ceil(next));
  }

  // Phase 1, `overflow`: keep accepting until a whole window passes with no
  // new connection, then look at the handshakes again.
  #awaitOverflowQuiet(drain: Drain): void {
    drain.phase = 'overflow';
    this.#updateArming();
    const acceptedAtMark = drain.tally.report.accepted;
    this.#schedule(drain, drain.overflowWindow, () => {
      if (drain.phase !== 'overflow') return;
      if (drain.tally.report.accepted === acceptedAtMark) drain.overflowed = false;
      drain.phase = 'handshakes';
      this.#waitForHandshakes(drain, this.#handshakesToWaitFor(drain));
    });
  }

  // `handshakeWait` or the deadline: phase 1 waits no longer.
  #endWaits(drain: Drain): void {
    if (!this.#isCurrent(drain) || (drain.phase !== 'handshakes' && drain.phase !== 'overflow')) return;
    drain.overflowed = false;
    drain.socketReport.handshakesAbandoned = this.#handshakesLeft();
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
    for (const generation of this.#generations) {
      for (const connection of generation.connections) this.#cut(connection, generation, 'ended');
    }
  }

  #forceDeadline(drain: Drain): void {
    if (!this.#isCurrent(drain)) return;
    if (drain.phase !== 'swept') {
      // accept(2) kept failing: what is still queued cannot be accepted, and
      // the close must end. Closing the socket resets it; the report says so.
      this.#endWaits(drain);
    }
    if (drain.phase !== 'swept') {
      clearTimeout(drain.next);
      drain.phase = 'swept';
      drain.socketReport.queueLost = this.#readQueue()?.queued ?? 0;
      this.#arming = 'off';
      this.#socket.disarm();
    }
    this.#wrapAll();
    for (const generation of this.#generations) {
      for (const connection of generation.connections) this.#cut(connection, generation, 'destroyed');
    }
    this.#maybeFinish();
  }

  // The deadline of the listener's close or of a generation's retirement
  // cuts a connection: each drain that counts it records how.
  #cut(connection: C, generation: Generation<C>, how: 'ended' | 'destroyed'): void {
    this.#lifetime[how](connection);
    this.#drain?.tally[how](connection);
    generation.retirement?.tally[how](connection);
    if (how === 'ended') generation.endGently(connection);
    else guarded(() => connection.destroy());
  }

  // A replaced generation drains on its own deadlines; it closes with its
  // last connection.
  #retire(generation: Generation<C>, timeout: number, forceTimeout: number): Promise<DrainReport> {
    let resolve!: (report: DrainReport) => void;
    const promise = new Promise<DrainReport>((res) => (resolve = res));
    const tally = new DrainTally(generation.connections.size);
    const timers = [
      setTimeout(() => {
        for (const connection of generation.connections) this.#cut(connection, generation, 'ended');
      }, timeout),
      setTimeout(() => {
        for (const connection of generation.connections) this.#cut(connection, generation, 'destroyed');
      }, Math.min(timeout + forceTimeout, MAX_TIMEOUT_MS)),
    ];
    generation.retirement = { tally, promise, resolve, timers };
    generation.startDraining([...generation.connections].filter((connection) => !this.#undelivered.has(connection)));
    this.#maybeFinishRetirement(generation);
    return promise;
  }

  #maybeFinishRetirement(generation: Generation<C>): void {
    const retirement = generation.retirement;
    if (retirement === undefined || generation.connections.size > 0 || generation.closed) return;
    for (const timer of retirement.timers) clearTimeout(timer);
    this.#generations.delete(generation);
    const protocol = generation.stats();
    generation.close();
    retirement.tally.finish(protocol);
    retirement.resolve(retirement.tally.report);
  }

  #onAccept = (fds: number[]): void => {
    this.#admit(fds);
    this.#updateArming();
  };

  // Every accepted fd is counted at once, before any user code runs; it is
  // wrapped and delivered now, or in a later batch.
  #admit(fds: number[]): void {
    const accepted = fds.length;
    if (accepted === 0) return;
    this.#lifetime.report.accepted += accepted;
    if (this.#drain !== undefined) {
      this.#drain.tally.report.accepted += accepted;
      this.#servedWhileDraining += accepted;
    }
    // The usual batch (no backlog, at most WRAP_BATCH) is wrapped straight
    // from the native array.
    if (this.#unwrapped.length === 0 && accepted <= WRAP_BATCH) {
      this.#wrapBatch(fds, 0, accepted);
      return;
    }
    for (let i = 0; i < accepted; i++) this.#unwrapped.push(fds[i]!);
    this.#wrapNext();
  }

  // The next WRAP_BATCH fds of the backlog.
  #wrapNext(): void {
    const fds = this.#unwrapped.splice(0, WRAP_BATCH);
    this.#wrapBatch(fds, 0, fds.length);
  }

  // fds[from, to) are counted (in `#unwrapped` or about to be wrapped here)
  // and owned by the listener until wrapped.
  #wrapBatch(fds: number[], from: number, to: number): void {
    const generation = this.#current;
    if (generation === undefined) {
      // Swept by a close before anything was served: there is no server to
      // hand them to.
      for (let i = from; i < to; i++) fs.closeSync(fds[i]!);
      this.#maybeFinish();
      return;
    }
    // Every fd of the batch becomes a counted connection before any user
    // code runs. The connections replace their fds in `admitted` (the
    // native array, or the spliced backlog, both this call's own).
    const admitted = fds as unknown as (C | undefined)[];
    const sink = generation.sink;
    let wrapped = 0;
    for (let i = from; i < to; i++) {
      let connection: C;
      try {
        connection = sink.wrap(fds[i]!, this.#inherited);
      } catch (error) {
        admitted[i] = undefined;
        this.#emitError(error as Error);
        continue;
      }
      generation.connections.add(connection);
      this.#undelivered.add(connection);
      connection.on('close', this.#onConnectionClose);
      admitted[i] = connection;
      wrapped++;
    }
    if (this.#unwrapped.length > 0 && !this.#wrapScheduled) {
      this.#wrapScheduled = true;
      setImmediate(this.#wrapLater);
    }
    for (let i = from; i < to; i++) {
      const connection = admitted[i];
      if (connection === undefined) continue;
      if (this.listenerCount('connection') > 0) guarded(() => this.emit('connection', connection));
      // Asked for each connection, after the listener's own event: a close()
      // from a handler earlier in the batch makes the rest of it stragglers.
      this.#undelivered.delete(connection);
      try {
        sink.deliver(connection, generation.draining);
      } catch (error) {
        reportUncaught(error);
      }
    }
    // A wrap that failed (EMFILE making the socket) may have released the last one.
    if (wrapped === 0) this.#maybeFinish();
  }

  readonly #wrapLater = (): void => {
    this.#wrapScheduled = false;
    this.#wrapNext();
  };

  #wrapAll(): void {
    while (this.#unwrapped.length > 0) this.#wrapNext();
  }

  #released(connection: C): void {
    for (const generation of this.#generations) {
      if (generation.connections.has(connection)) {
        this.#release(connection, generation);
        return;
      }
    }
  }

  #release(connection: C, generation: Generation<C>): void {
    if (!generation.connections.delete(connection)) return;
    this.#undelivered.delete(connection);
    this.#drain?.tally.released(connection);
    generation.retirement?.tally.released(connection);
    this.#maybeFinishRetirement(generation);
    if (this.#drain !== undefined) this.#maybeFinish();
    else if (this.#state === 'accepting') this.#updateArming();
  }

  // TCP_NODELAY on the listening socket as `sink` wants it for its
  // connections, so that they inherit it instead of a setsockopt each. Only
  // on a socket this listener alone holds, and only over TCP.
  #inheritNoDelay(sink: ConnectionSink<C>): void {
    if (this.#shared || this.#socket.path !== undefined) return;
    const wanted = sink.noDelay?.() ?? false;
    if (wanted === this.#inherited.noDelay) return;
    // Unknown until the kernel has said yes: connections then set it each.
    this.#inherited.noDelay = undefined;
    if (this.#setListenerNoDelay(wanted)) this.#inherited.noDelay = wanted;
  }

  #setListenerNoDelay(on: boolean): boolean {
    try {
      this.#socket.noDelay(on);
      return true;
    } catch {
      return false;
    }
  }

  #lifetimeTotals(): Pick<ListenerStats, 'accepted' | 'servedWhileDraining' | 'ended' | 'destroyed'> {
    const { accepted, ended, destroyed } = this.#lifetime.report;
    return { accepted, servedWhileDraining: this.#servedWhileDraining, ended, destroyed };
  }

  #openConnections(): number {
    let open = 0;
    for (const generation of this.#generations) open += generation.connections.size;
    return open;
  }

  // Phase 2: the release of the last connection closes the fd.
  #maybeFinish(): void {
    const drain = this.#drain;
    if (drain === undefined || drain.phase !== 'swept') return;
    if (this.#openConnections() > 0 || this.#unwrapped.length > 0) return;
    this.#drain = undefined;
    this.#clearTimers(drain);
    this.#arming = 'off';
    this.#socket.close();
    let protocol: Record<string, unknown> | undefined;
    for (const generation of this.#generations) {
      if (generation.retirement !== undefined) {
        this.#maybeFinishRetirement(generation);
        continue;
      }
      protocol = generation.stats();
      generation.close();
    }
    this.#generations.clear();
    drain.tally.finish(protocol);
    const report: CloseReport = { ...drain.socketReport, ...drain.tally.report };
    this.#transition('closed', () => drain.resolve(report), report);
  }

  #clearTimers(drain: Drain): void {
    for (const timer of drain.timers) clearTimeout(timer);
    clearTimeout(drain.next);
    drain.next = undefined;
  }

  // Armed while accepting (unless paused, or the current server's connection
  // limit is reached: then clients wait in the kernel queue instead of being
  // dropped), and while draining until the sweep, whatever the limit; never
  // after.
  #wantedArming(): Arming {
    const drain = this.#drain;
    if (drain !== undefined) {
      // A gated AF_UNIX listener is shut down for reading, and so polls
      // readable for ever: only the sweep accepts from it.
      const unixGated = drain.socketReport.gated && this.#socket.path !== undefined;
      return drain.phase === 'swept' || unixGated ? 'off' : 'unlimited';
    }
    const current = this.#current;
    if (this.#state !== 'accepting' || this.#paused || current === undefined) return 'off';
    const limit = current.sink.limit();
    if (limit === undefined) return 'unlimited';
    const room = limit - current.connections.size;
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
  #transition(next: ListenerState, settle?: () => void, report?: CloseReport): void {
    if (!EDGES[this.#state].includes(next)) {
      throw new Error(`Invalid listener transition ${this.#state} -> ${next}`);
    }
    this.#state = next;
    settle?.();
    if (next === 'draining' && channels.draining.hasSubscribers) channels.draining.publish({ listener: this });
    if (next === 'closed' && channels.close.hasSubscribers) channels.close.publish({ listener: this, report });
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
