import { guarded } from './core/callout.js';

/** A connection as the listener sees it: it only needs to know when it ends. */
export interface Connection {
  /** 'close' comes once; the listener is called with the connection as `this`, as EventEmitter does. */
  on(event: 'close', listener: (this: never) => void): unknown;
  destroy(): void;
}

/**
 * What each accepted socket inherits from the listening socket (Linux copies
 * TCP_NODELAY at accept): `undefined` while the listener does not know.
 */
export interface Inherited {
  readonly noDelay: boolean | undefined;
}

/**
 * Where accepted connections go: a Node server (see `server/feed.ts`) or a
 * test double. The listener owns counting and the drain; the sink owns the
 * protocol.
 */
export interface ConnectionSink<C extends Connection = Connection> {
  /** Makes a connection of an accepted fd, which it owns from then on. */
  wrap(fd: number, inherited: Inherited): C;
  /**
   * Whether the connections want TCP_NODELAY (a Node server's `noDelay`):
   * the listener then sets it on the listening socket once, for them to
   * inherit. Absent: they do not.
   */
  noDelay?(): boolean;
  /** Hands the connection to the server; `draining` when a close is under way. */
  deliver(connection: C, draining: boolean): void;
  /**
   * A drain began (`true`, with the connections open at that moment) or was
   * aborted by `resume()` (`false`).
   */
  draining(on: boolean, connections: Iterable<C>): void;
  /** The deadline passed: end with FIN after reading what the peer sent. */
  endGently(connection: C): void;
  /** The last connection is gone and no more will come: detach from the server. */
  closed(): void;
  /** Connections the sink may not exceed, or `undefined` for no limit. */
  limit(): number | undefined;
  /** Per-protocol figures for the drain's report. */
  stats?(): Record<string, unknown>;
  /** A connection the server had before the listener took over (see `Listener.include`). */
  include?(connection: C): void;
}

/** What happened to one generation's connections during a drain. */
export interface DrainReport {
  /** Connections already open when the drain began. */
  openAtClose: number;
  /** Connections accepted while draining: the queue, finished handshakes, stragglers. */
  accepted: number;
  /** Connections that finished on their own while draining. */
  served: number;
  /** Connections ended gently at `timeout`. */
  ended: number;
  /** Connections destroyed at `timeout + forceTimeout`. */
  destroyed: number;
  /** Milliseconds from the start of the drain to its end. */
  durationMs: number;
  /** What the protocol drains did (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY, drain hooks). */
  protocol?: Record<string, unknown>;
}

/** Counts one drain: each connection is served, or cut (ended or destroyed), once. */
export class DrainTally {
  readonly report: DrainReport;
  readonly #started = performance.now();
  // How each cut connection was cut: counted once per kind, however many
  // deadlines (a close's, a retirement's, destroy()) reach it.
  readonly #cut = new WeakMap<object, 'ended' | 'destroyed'>();

  constructor(openAtClose: number) {
    this.report = { openAtClose, accepted: 0, served: 0, ended: 0, destroyed: 0, durationMs: 0 };
  }

  released(connection: object): void {
    if (!this.#cut.has(connection)) this.report.served++;
  }

  ended(connection: object): void {
    if (this.#cut.has(connection)) return;
    this.#cut.set(connection, 'ended');
    this.report.ended++;
  }

  destroyed(connection: object): void {
    if (this.#cut.get(connection) === 'destroyed') return;
    this.#cut.set(connection, 'destroyed');
    this.report.destroyed++;
  }

  finish(protocol: Record<string, unknown> | undefined): void {
    this.report.durationMs = performance.now() - this.#started;
    if (protocol !== undefined) this.report.protocol = protocol;
  }
}

/**
 * One server fed by a listener, with its own connections and its own count
 * (NGINX Unit's `lev->count` is per listen socket; here each generation of
 * servers that one socket feeds counts its own). A listener has one current
 * generation; a replaced one drains on its own while the socket feeds the
 * next, and closes once its last connection is gone.
 */
export class Generation<C extends Connection = Connection> {
  readonly sink: ConnectionSink<C>;
  readonly connections = new Set<C>();
  /** Whether the sink is in draining mode (the listener's close, or this generation's retirement). */
  draining = false;
  /** This generation's own drain when it was replaced, until its last connection is gone. */
  retirement: Retirement | undefined;
  #closed = false;

  constructor(sink: ConnectionSink<C>) {
    this.sink = sink;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Puts the sink in draining mode with the connections open now (once per drain). */
  startDraining(open: C[]): void {
    if (this.draining) return;
    this.draining = true;
    guarded(() => this.sink.draining(true, open));
  }

  stopDraining(): void {
    if (!this.draining) return;
    this.draining = false;
    guarded(() => this.sink.draining(false, this.connections));
  }

  endGently(connection: C): void {
    guarded(() => this.sink.endGently(connection));
  }

  /** The protocol figures, whatever the sink throws. */
  stats(): Record<string, unknown> | undefined {
    let stats: Record<string, unknown> | undefined;
    guarded(() => {
      stats = this.sink.stats?.();
    });
    return stats;
  }

  /** The sink detaches from its server; once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.draining = false;
    guarded(() => this.sink.closed());
  }
}

/** A replaced generation's own drain: deadlines, a report, a promise. */
export interface Retirement {
  readonly tally: DrainTally;
  readonly promise: Promise<DrainReport>;
  readonly resolve: (report: DrainReport) => void;
  readonly timers: NodeJS.Timeout[];
}
