// A fake NativeBinding and ConnectionSink for driving Listener without
// sockets. The fake kernel keeps what the real one does where the listener's
// promise depends on it: a queue of completed handshakes, handshakes in
// SYN_RECV, the SYN gate, shutdown(SHUT_RD) and close() resetting whatever is
// still queued, accept on a socket that is not listening failing with EINVAL,
// and a level-triggered poll (one batch per poll() while armed).
import { EventEmitter } from 'node:events';
import type {
  NativeAddress,
  NativeBinding,
  NativeHandle,
  NativeHandshakeRequest,
  NativeSocketInfo,
  NativeSystemError,
} from '../../src/core/native.js';
import type { Connection, ConnectionSink } from '../../src/listener.js';

const ACCEPT_BATCH = 128;

function systemError(code: string, errno: number, syscall: string): NativeSystemError {
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno, syscall });
}

/** One fake listening socket. Every violation of the fd's lifecycle is recorded, not thrown. */
export class FakeHandle implements NativeHandle {
  #fd: number;
  /** Completed handshakes waiting for accept(), as the fds accept() will return. */
  readonly queue: number[] = [];
  /** Handshakes in SYN_RECV. */
  handshaking = 0;
  gated = false;
  /** What gate(true) throws, if set (a locked socket filter: EPERM). */
  gateError: NativeSystemError | undefined;
  listening = true;
  armed: { onAccept: (fds: number[]) => void; onError: (error: NativeSystemError) => void; limit: number } | undefined;
  closeCalls = 0;
  /** Connections the kernel reset: queued ones at shutdown()/close(). */
  resetQueued = 0;
  /** Handshakes in SYN_RECV dropped by shutdown()/close(). */
  resetHandshakes = 0;
  /** Calls made after close(): the real handle throws EBADF for these. */
  readonly useAfterClose: string[] = [];
  readonly ops: string[] = [];
  #nextFd: () => number;

  constructor(fd: number, nextFd: () => number) {
    this.#fd = fd;
    this.#nextFd = nextFd;
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  #use(operation: string): boolean {
    this.ops.push(operation);
    if (this.#fd >= 0) return true;
    this.useAfterClose.push(operation);
    return false;
  }

  #badf(syscall: string): NativeSystemError {
    return systemError('EBADF', 9, syscall);
  }

  arm(onAccept: (fds: number[]) => void, onError: (error: NativeSystemError) => void, limit?: number): void {
    if (!this.#use('arm')) throw this.#badf('uv_poll_start');
    this.armed = { onAccept, onError, limit: Math.min(Math.max(limit ?? ACCEPT_BATCH, 1), ACCEPT_BATCH) };
  }

  disarm(): void {
    this.ops.push('disarm');
    this.armed = undefined;
  }

  sweep(shutdown: boolean): { fds: number[]; error: NativeSystemError | null } {
    if (!this.#use(shutdown ? 'sweep+shutdown' : 'sweep')) throw this.#badf('accept4');
    // accept4 on a socket that is not listening fails with EINVAL.
    if (!this.listening) return { fds: [], error: systemError('EINVAL', 22, 'accept4') };
    const fds = this.queue.splice(0);
    if (shutdown) {
      this.armed = undefined;
      this.#shutdown();
    }
    return { fds, error: null };
  }

  ref(_on: boolean): void {
    this.ops.push('ref');
  }

  queueDepth(): { queued: number; backlog: number } {
    if (!this.#use('queueDepth')) throw this.#badf('getsockopt');
    return { queued: this.queue.length, backlog: 511 };
  }

  handshakes(): number {
    if (!this.#use('handshakes')) throw this.#badf('getsockname');
    return this.handshaking;
  }

  /** Each handshake in SYN_RECV, as sock_diag would list it: the next SYN-ACK retransmit in 1 s. */
  handshakeRequests(): NativeHandshakeRequest[] {
    if (!this.#use('handshakeRequests')) throw this.#badf('sendto');
    return Array.from({ length: this.handshaking }, (_, i) => ({ key: `syn-${i}`, retrans: 0, expiresMs: 1000 }));
  }

  gate(on: boolean): void {
    if (!this.#use(on ? 'gate on' : 'gate off')) throw this.#badf('setsockopt');
    if (on && this.gateError !== undefined) throw this.gateError;
    this.gated = on;
  }

  steer(_index: number): void {
    if (!this.#use('steer')) throw this.#badf('setsockopt');
  }

  reusePortMembers(): number {
    return 1;
  }

  shutdown(): void {
    if (!this.#use('shutdown')) throw this.#badf('shutdown');
    this.#shutdown();
  }

  listen(_backlog: number): void {
    if (!this.#use('listen')) throw this.#badf('listen');
    this.listening = true;
  }

  address(): NativeAddress {
    if (!this.#use('address')) throw this.#badf('getsockname');
    return { address: '127.0.0.1', family: 'IPv4', port: 4000 };
  }

  close(): void {
    this.ops.push('close');
    this.closeCalls++;
    if (this.#fd < 0) return;
    this.#shutdown();
    this.armed = undefined;
    this.#fd = -1;
  }

  // shutdown(SHUT_RD) and close() reset every queued connection and drop the
  // handshakes in SYN_RECV.
  #shutdown(): void {
    this.resetQueued += this.queue.splice(0).length;
    this.resetHandshakes += this.handshaking;
    this.handshaking = 0;
    this.listening = false;
  }

  // The client and kernel side.

  /** A client's SYN: refused without a listening socket, dropped by the gate, else a handshake starts. */
  syn(): 'refused' | 'dropped' | 'handshaking' {
    if (this.closed || !this.listening) return 'refused';
    if (this.gated) return 'dropped';
    this.handshaking++;
    return 'handshaking';
  }

  /** One handshake in SYN_RECV completes into the accept queue. */
  completeHandshake(): boolean {
    if (this.closed || !this.listening || this.handshaking === 0) return false;
    this.handshaking--;
    this.queue.push(this.#nextFd());
    return true;
  }

  /** The poll reports the socket readable: one accept batch, if armed and anything is queued. */
  poll(): boolean {
    const armed = this.armed;
    if (this.closed || armed === undefined || this.queue.length === 0) return false;
    armed.onAccept(this.queue.splice(0, armed.limit));
    return true;
  }
}

/** The binding: open() makes a FakeHandle; every handle and fd it made is kept for inspection. */
export { systemError };

export class FakeBinding implements NativeBinding {
  readonly acceptBatch = ACCEPT_BATCH;
  readonly handles: FakeHandle[] = [];
  #fds = 100;

  readonly nextFd = (): number => this.#fds++;

  /** What open() throws for a family, if set (no IPv6 on the host: EAFNOSUPPORT). */
  readonly openErrors = new Map<4 | 6, NativeSystemError>();

  open(family: 4 | 6 = 4): NativeHandle {
    const error = this.openErrors.get(family);
    if (error !== undefined) throw error;
    const handle = new FakeHandle(this.nextFd(), this.nextFd);
    this.handles.push(handle);
    return handle;
  }

  adopt(): NativeHandle {
    return this.open();
  }

  inspect(): NativeSocketInfo {
    return { stream: true, inet: true, tcp: true, listening: true, reusePort: false };
  }

  // The handover and sd_notify calls: not used by the listener's tests.
  unixConnect(): number {
    throw systemError('ENOENT', 2, 'connect');
  }

  sendWithFds(): void {
    throw systemError('ENOTCONN', 107, 'sendmsg');
  }

  receiveWithFds(): { data: Buffer; fds: number[]; eof: boolean } {
    throw systemError('ENOTCONN', 107, 'recvmsg');
  }

  peerCredentials(): { pid: number; uid: number; gid: number } {
    throw systemError('ENOTCONN', 107, 'getsockopt');
  }

  notify(): void {
    throw systemError('ENOENT', 2, 'sendto');
  }

  get last(): FakeHandle {
    const handle = this.handles[this.handles.length - 1];
    if (handle === undefined) throw new Error('no handle opened');
    return handle;
  }
}

/** A connection made of an accepted fd: destroy() closes the fd and emits 'close'. */
export class FakeConnection extends EventEmitter implements Connection {
  readonly fd: number;
  destroyed = false;
  endedGently = false;
  readonly #sink: FakeSink;

  constructor(fd: number, sink: FakeSink) {
    super();
    this.fd = fd;
    this.#sink = sink;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#sink.closeFd(this.fd);
    if (this.#sink.syncClose) this.emit('close');
    else queueMicrotask(() => this.emit('close'));
  }
}

/**
 * A sink that records what the listener asked of it and checks, at each
 * call, that every connection has exactly one drainer: one open when the
 * drain began is in draining(true)'s connections, one delivered during the
 * drain is delivered with `draining` set, never both, never neither.
 */
export class FakeSink implements ConnectionSink<FakeConnection> {
  readonly open = new Set<FakeConnection>();
  readonly delivered = new Map<FakeConnection, boolean>();
  /** Connections whose drain is owned, per drain session. */
  drained = new Set<FakeConnection>();
  drainingNow = false;
  readonly drainingCalls: boolean[] = [];
  closedCalls = 0;
  readonly closedFds = new Set<number>();
  readonly violations: string[] = [];
  /** fds whose wrap() fails (as new net.Socket({ fd }) can): the sink closes the fd and throws. */
  readonly failWrap = new Set<number>();
  /** Called from deliver(), after the checks: a test hook (e.g. a close() from the server's handler). */
  onDeliver: ((connection: FakeConnection, draining: boolean) => void) | undefined;

  constructor(
    readonly maxConnections: number | undefined = undefined,
    /** Whether destroy() emits 'close' synchronously (net.Socket does it on a later tick). */
    readonly syncClose = false,
  ) {}

  closeFd(fd: number): void {
    if (this.closedFds.has(fd)) this.violations.push(`fd ${fd} closed twice`);
    this.closedFds.add(fd);
  }

  wrap(fd: number): FakeConnection {
    if (this.closedCalls > 0) this.violations.push(`wrap(${fd}) after closed()`);
    if (this.failWrap.has(fd)) {
      this.closeFd(fd);
      throw Object.assign(new Error(`wrap ${fd} failed`), { code: 'EMFILE' });
    }
    const connection = new FakeConnection(fd, this);
    this.open.add(connection);
    connection.once('close', () => this.open.delete(connection));
    return connection;
  }

  deliver(connection: FakeConnection, draining: boolean): void {
    if (this.closedCalls > 0) this.violations.push(`deliver(${connection.fd}) after closed()`);
    if (this.delivered.has(connection)) this.violations.push(`fd ${connection.fd} delivered twice`);
    this.delivered.set(connection, draining);
    if (draining !== this.drainingNow) {
      this.violations.push(`fd ${connection.fd} delivered with draining=${draining} while the sink is ${this.drainingNow ? '' : 'not '}draining`);
    }
    if (draining) this.#own(connection, 'deliver');
    this.onDeliver?.(connection, draining);
  }

  draining(on: boolean, connections?: Iterable<FakeConnection>): void {
    this.drainingCalls.push(on);
    if (on === this.drainingNow) this.violations.push(`draining(${on}) twice in a row`);
    this.drainingNow = on;
    this.drained = new Set();
    // Without the connections, ownership of the ones already open cannot be checked.
    if (!on || connections === undefined) return;
    for (const connection of connections) {
      if (!this.delivered.has(connection)) this.violations.push(`draining(true) passed fd ${connection.fd}, never delivered`);
      this.#own(connection, 'draining(true)');
    }
    for (const connection of this.delivered.keys()) {
      if (!connection.destroyed && !this.drained.has(connection)) {
        this.violations.push(`fd ${connection.fd} open at draining(true) but not passed`);
      }
    }
  }

  #own(connection: FakeConnection, by: string): void {
    if (this.drained.has(connection)) this.violations.push(`fd ${connection.fd} drained twice (again by ${by})`);
    this.drained.add(connection);
  }

  endGently(connection: FakeConnection): void {
    if (connection.destroyed) this.violations.push(`endGently(${connection.fd}) after destroy`);
    connection.endedGently = true;
  }

  closed(): void {
    this.closedCalls++;
    this.drainingNow = false;
  }

  limit(): number | undefined {
    return this.maxConnections;
  }
}
