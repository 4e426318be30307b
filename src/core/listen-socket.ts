import dns from 'node:dns/promises';
import fs from 'node:fs';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  ListenerError,
  invalidArgType,
  invalidArgValue,
} from './errors.js';
import {
  loadBinding,
  type NativeAddress,
  type NativeBinding,
  type NativeHandle,
  type NativeHandshakeRequest,
  type NativeSocketInfo,
  type NativeSystemError,
} from './native.js';
import { listeningFd } from './node-internals.js';
import { openUnix, printable, validateUnixOptions, type UnixPath } from './unix-path.js';
import { validateBoolean, validateInteger, validateObject, validateString } from './validate.js';

/** Options for {@link ListenSocket.open}. */
export interface OpenOptions {
  /**
   * Address or host name to bind; names resolve with `dns.lookup`.
   * @default '::' (dual-stack), or '0.0.0.0' where IPv6 is unavailable
   */
  host?: string;
  /** @default 0 (an ephemeral port) */
  port?: number;
  /** Accept queue length requested from `listen(2)`; the kernel caps it at somaxconn. @default 511 */
  backlog?: number;
  /** Address family to resolve `host` with. @default either */
  family?: 4 | 6;
  /** `SO_REUSEPORT`: let several listeners share the port. @default false */
  reusePort?: boolean;
  /** `IPV6_V6ONLY` on an IPv6 listener. @default false */
  ipv6Only?: boolean;
  /**
   * Listen on a Unix-domain (AF_UNIX stream) socket at this path instead of
   * a TCP port; a leading `'\0'` names the abstract namespace (no file).
   * A socket file left by a listener that is gone (connect(2) refused) is
   * unlinked and bound again; a live listener there, or a file that is not
   * a socket, is `EADDRINUSE`. The file is unlinked when the listener
   * closes, unless another listener has replaced it since.
   */
  path?: string;
  /** With `path`: the socket file's permission bits, set before `listen(2)`. @default the umask's */
  mode?: number;
  /**
   * With `path`: take the path over from the listener serving it, atomically
   * — bind a temporary name in the same directory, listen, then rename(2) it
   * over the path — so that a client connecting meanwhile reaches the old
   * listener or this one, never ENOENT or ECONNREFUSED. The old listener
   * keeps serving what it has queued and, when it closes, leaves the path
   * (no longer its file) alone.
   * @default false
   */
  replace?: boolean;
}

/** The accept queue as the kernel reports it. */
export interface Pending {
  /** Connections whose handshake completed (on AF_UNIX: whose connect(2) returned), waiting for `accept()`. */
  queued: number;
  /** The queue's cap: min(backlog, somaxconn). */
  backlog: number;
  /** Handshakes in SYN_RECV (only with `{ handshakes: true }`; always 0 on AF_UNIX, which has none). */
  handshaking?: number;
}

/**
 * A handshake in SYN_RECV: the listener answered the SYN, the final ACK has
 * not arrived (or was dropped because the accept queue was full).
 */
export type HandshakeRequest = NativeHandshakeRequest;
const FIRST_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
const DEFAULT_BACKLOG = 511;
const MAX_BACKLOG = 0x7fffffff;
const TCP_ONLY_OPTIONS = ['host', 'port', 'family', 'reusePort', 'ipv6Only'] as const;
const UNIX_ONLY_OPTIONS = ['mode', 'replace'] as const;

function checkPlatform(): void {
  if (process.platform !== 'linux') {
    throw new ListenerError(
      'ERR_UNSUPPORTED_PLATFORM',
      `graceful-listener needs Linux (TCP_INFO on listeners, sock_diag, socket filters); this is ${process.platform}`,
    );
  }
}

async function resolveHost(host: string | undefined, family: 4 | 6 | undefined): Promise<{ address: string; family: 4 | 6 }> {
  if (host === undefined) return { address: family === 4 ? '0.0.0.0' : '::', family: family ?? 6 };
  const literal = net.isIP(host);
  if (literal !== 0) {
    if (family !== undefined && family !== literal) {
      throw invalidArgValue('options.host', host, `is an IPv${literal} address but options.family is ${family}`);
    }
    return { address: host, family: literal as 4 | 6 };
  }
  if (host.length === 0) throw invalidArgValue('options.host', host, 'must be an address or a host name');
  const found = await dns.lookup(host, { family: family ?? 0 });
  return { address: found.address, family: found.family as 4 | 6 };
}

/**
 * A listening TCP socket owned by the native addon: accept(2) is armed and
 * disarmed without closing the fd, the accept queue is visible, and new SYNs
 * can be gated. The low-level building block under `listen()`.
 *
 * Or a Unix-domain one (`path`): the same accept, queue (through sock_diag)
 * and close; its gate is the path unlinked and `shutdown(SHUT_RD)`, and
 * there are no handshakes, no reuseport group, no address to print.
 */
export class ListenSocket extends EventEmitter {
  readonly #handle: NativeHandle;
  readonly #backlog: number;
  readonly #reusePort: boolean;
  #closed = false;
  #onAccept: ((fds: number[]) => void) | undefined;
  #backoffMs = FIRST_BACKOFF_MS;
  #backoffTimer: NodeJS.Timeout | undefined;
  #limit: number | undefined;
  readonly #unixPath: UnixPath | undefined;
  // An AF_UNIX socket shut down for reading refuses connects for good:
  // listen(2) does not undo it.
  #unixGated = false;

  private constructor(handle: NativeHandle, backlog: number, reusePort: boolean, unixPath?: UnixPath) {
    super();
    this.#handle = handle;
    this.#backlog = backlog;
    this.#reusePort = reusePort;
    this.#unixPath = unixPath;
  }

  /** Opens a new listening socket (`SOCK_CLOEXEC | SOCK_NONBLOCK`, `SO_REUSEADDR`). */
  static async open(options: OpenOptions = {}, binding: NativeBinding = loadBinding()): Promise<ListenSocket> {
    checkPlatform();
    validateObject('options', options);
    if (options.path !== undefined) return ListenSocket.#openUnix(options, binding);
    for (const name of UNIX_ONLY_OPTIONS) {
      if (options[name] !== undefined) throw invalidArgValue(`options.${name}`, options[name], 'needs options.path (a Unix-domain listener)');
    }
    const port = validateInteger('options.port', options.port ?? 0, 0, 65535);
    const backlog = validateInteger('options.backlog', options.backlog ?? DEFAULT_BACKLOG, 0, MAX_BACKLOG);
    const reusePort = validateBoolean('options.reusePort', options.reusePort ?? false);
    const ipv6Only = validateBoolean('options.ipv6Only', options.ipv6Only ?? false);
    if (options.family !== undefined && options.family !== 4 && options.family !== 6) {
      throw invalidArgValue('options.family', options.family, 'must be 4 or 6');
    }
    if (options.host !== undefined) validateString('options.host', options.host);
    const { address, family } = await resolveHost(options.host, options.family);
    try {
      return new ListenSocket(binding.open(family, address, port, backlog, reusePort, ipv6Only), backlog, reusePort);
    } catch (error) {
      // Node falls back to IPv4 when the default dual-stack address is unavailable.
      const code = (error as NativeSystemError).code;
      if (options.host === undefined && options.family === undefined && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
        return new ListenSocket(binding.open(4, '0.0.0.0', port, backlog, reusePort, false), backlog, reusePort);
      }
      throw error;
    }
  }

  static #openUnix(options: OpenOptions, binding: NativeBinding): ListenSocket {
    for (const name of TCP_ONLY_OPTIONS) {
      if (options[name] !== undefined) {
        throw invalidArgValue(`options.${name}`, options[name], 'cannot be used with options.path (a Unix-domain listener has no address, port or reuseport group)');
      }
    }
    const unix = validateUnixOptions(options);
    const backlog = validateInteger('options.backlog', options.backlog ?? DEFAULT_BACKLOG, 0, MAX_BACKLOG);
    const { handle, unixPath } = openUnix(binding, unix, backlog);
    return new ListenSocket(handle, backlog, false, unixPath);
  }

  /**
   * Takes over an existing listening TCP socket — an fd, or a `net.Server`
   * that is listening — through a `F_DUPFD_CLOEXEC` duplicate. The caller's fd
   * stays open and is the caller's to close; the queue belongs to the socket,
   * so closing the original loses nothing.
   */
  static adopt(source: number | net.Server, binding: NativeBinding = loadBinding()): ListenSocket {
    checkPlatform();
    let fd: number;
    if (source instanceof net.Server) {
      const serverFd = listeningFd(source);
      if (serverFd === undefined) {
        throw invalidArgValue('server', '[net.Server]', 'must be listening on a TCP port');
      }
      fd = serverFd;
    } else if (typeof source === 'number') {
      fd = validateInteger('fd', source, 0, MAX_BACKLOG);
    } else {
      throw invalidArgType('fd', 'of type number or an instance of net.Server', source);
    }
    // Checked before adopt(): the duplicate's O_NONBLOCK is set on the open
    // file description the caller's fd shares, so a refused fd is never touched.
    let info: NativeSocketInfo;
    try {
      info = binding.inspect(fd);
    } catch (error) {
      const { code, syscall } = error as NativeSystemError;
      const reason = code === 'EBADF' && syscall === 'fcntl' ? 'must be an open file descriptor' : 'must be a socket';
      throw invalidArgValue('fd', fd, reason, error);
    }
    if (!info.inet || !info.stream || !info.tcp) throw invalidArgValue('fd', fd, 'must be a TCP socket');
    if (!info.listening) throw invalidArgValue('fd', fd, 'must be a listening socket');
    let handle: NativeHandle;
    try {
      handle = binding.adopt(fd);
    } catch (error) {
      // EINVAL: the number now names another socket (reused by another thread).
      const reason = (error as NativeSystemError).code === 'EINVAL' ? 'must be a listening socket' : 'must be an open file descriptor';
      throw invalidArgValue('fd', fd, reason, error);
    }
    return new ListenSocket(handle, handle.queueDepth().backlog, info.reusePort);
  }

  /** The path of a Unix-domain socket (a leading `'\0'`: abstract), or undefined for TCP. */
  get path(): string | undefined {
    return this.#unixPath?.path;
  }

  /**
   * Whether the socket file at `path` is still this socket's (not replaced
   * by another listener, not removed); false for TCP and abstract names.
   */
  ownsPath(): boolean {
    return this.#unixPath?.owned() ?? false;
  }

  /** The socket's fd (owned by this object; -1 once closed). */
  get fd(): number {
    return this.#handle.fd;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The backlog requested from `listen(2)`; `listen()` after `shutdown()` uses it again. */
  get backlog(): number {
    return this.#backlog;
  }

  /**
   * Starts accepting: `onAccept` receives each batch of accepted fds, already
   * CLOEXEC and non-blocking, and owns them. A failed accept(2) — EMFILE,
   * ENFILE, ENOBUFS, ENOMEM, or EPERM from a security module, EINVAL after
   * another owner shut the socket down — disarms, emits `'error'`, and arms
   * again after a back-off (10 ms doubling to 1 s); the connections wait in
   * the kernel queue meanwhile.
   */
  arm(onAccept: (fds: number[]) => void, options?: { limit?: number }): void {
    this.#assertOpen('arm');
    if (typeof onAccept !== 'function') throw invalidArgType('onAccept', 'of type function', onAccept);
    this.#limit = undefined;
    if (options !== undefined) {
      validateObject('options', options);
      if (options.limit !== undefined) this.#limit = validateInteger('options.limit', options.limit, 1, MAX_BACKLOG);
    }
    this.#onAccept = onAccept;
    this.#clearBackoff();
    this.#startPolling();
  }

  /** Stops accepting; the fd stays open and new connections wait in the queue. */
  disarm(): void {
    this.#assertOpen('disarm');
    this.#onAccept = undefined;
    this.#clearBackoff();
    this.#handle.disarm();
  }

  get armed(): boolean {
    return this.#onAccept !== undefined && this.#backoffTimer === undefined;
  }

  /**
   * The accept queue: one `getsockopt(TCP_INFO)`, cheap enough for every
   * request. `{ handshakes: true }` also counts SYN_RECV handshakes through
   * sock_diag, which walks every socket of the namespace: call it sparingly.
   */
  pending(options?: { handshakes?: boolean }): Pending {
    this.#assertOpen('pending');
    const depth: Pending = this.#handle.queueDepth();
    if (options !== undefined) {
      validateObject('options', options);
      if (options.handshakes !== undefined && validateBoolean('options.handshakes', options.handshakes)) {
        // connect(2) on AF_UNIX queues a connection whole: nothing is half-open.
        depth.handshaking = this.#unixPath === undefined ? this.#handle.handshakes() : 0;
      }
    }
    return depth;
  }

  /**
   * Each handshake in SYN_RECV on this socket's port: a stable `key`, the
   * SYN-ACK retransmits so far (`retrans`) and the ms until the request's
   * next timer (`expiresMs`), for bounding a wait on handshakes that may never
   * complete (a spoofed SYN, a vanished client stays about a minute). One
   * sock_diag dump, which walks every socket of the namespace: call it
   * sparingly. sock_diag cannot tell which member of a `SO_REUSEPORT` group a
   * request belongs to: each member of the group sees them all.
   */
  handshakeRequests(): HandshakeRequest[] {
    this.#assertOpen('handshakeRequests');
    return this.#unixPath === undefined ? this.#handle.handshakeRequests() : [];
  }

  /**
   * Accepts everything queued right now, until EAGAIN, and returns the fds.
   * With `{ shutdown: true }` the listener is shut down (and disarmed) in the
   * same native step, so nothing can reach the queue between the last accept
   * and the shutdown. An error after some accepts is returned beside them;
   * the socket is then not shut down (its queue is not empty).
   */
  sweep(options?: { shutdown?: boolean }): { fds: number[]; error: Error | null } {
    this.#assertOpen('sweep');
    const shutdown = options?.shutdown === true;
    const result = this.#handle.sweep(shutdown);
    // A failed sweep (EMFILE…) did not shut down: polling stays as it was.
    if (shutdown && result.error === null) {
      this.#onAccept = undefined;
      this.#clearBackoff();
      if (this.#unixPath !== undefined) this.#unixGated = true;
    }
    return result;
  }

  /** Whether an armed socket keeps the event loop alive (`server.ref()`/`unref()`). @default true */
  ref(on = true): void {
    this.#assertOpen('ref');
    this.#handle.ref(validateBoolean('on', on));
  }

  /** Whether SO_REUSEPORT is set: other sockets may share the port. */
  get reusePort(): boolean {
    return this.#reusePort;
  }

  /**
   * The other LISTEN sockets of this socket's SO_REUSEPORT group (same
   * address and port, through sock_diag, which walks every socket of the
   * namespace): 0 without SO_REUSEPORT.
   */
  reusePortSiblings(): number {
    this.#assertOpen('reusePortSiblings');
    return this.#reusePort ? Math.max(0, this.#handle.reusePortMembers() - 1) : 0;
  }

  /**
   * Sends every new SYN of the SO_REUSEPORT group to the member at `index`
   * (their listen() order; a closed member's slot is refilled by the last),
   * or, with a negative index, lets the kernel hash again. Unlike the SYN
   * gate, clients are served at once by the member steered to.
   */
  steer(index: number): void {
    this.#assertOpen('steer');
    this.#assertTcp('steer()');
    this.#handle.steer(validateInteger('index', index, -1, 0xffff));
  }

  /**
   * SYN gate: while on, new SYNs are dropped (clients retransmit, no RST).
   *
   * On a Unix-domain socket there is no SYN: the gate unlinks the path (if
   * its file is still this socket's; new connects get ENOENT) and shuts the
   * socket down for reading — an AF_UNIX listener then refuses connects
   * (ECONNREFUSED, also to one that resolved the path before the unlink, and
   * to an abstract name) while everything already queued stays acceptable.
   * That cannot be undone: `gate(false)` after it throws `ERR_UNIX_LISTENER`.
   */
  gate(on: boolean): void {
    this.#assertOpen('gate');
    validateBoolean('on', on);
    if (this.#unixPath === undefined) {
      this.#handle.gate(on);
      return;
    }
    if (!on) {
      if (this.#unixGated) throw unixError('gate(false)', 'a Unix-domain socket shut down for reading refuses connects for good');
      return;
    }
    if (this.#unixGated) return;
    let unlinkFailure: unknown;
    try {
      this.#unixPath.release();
    } catch (error) {
      unlinkFailure = error;
    }
    this.#handle.shutdown();
    this.#unixGated = true;
    if (unlinkFailure !== undefined) throw unlinkFailure;
  }

  /**
   * `TCP_NODELAY` on the listening socket. Linux copies it to each socket
   * accepted from then on, so a server that wants it on every connection
   * needs no setsockopt per connection.
   */
  noDelay(on: boolean): void {
    this.#assertOpen('noDelay');
    this.#handle.noDelay(on);
  }

  /**
   * `shutdown(SHUT_RD)`: the socket leaves LISTEN and new clients are refused.
   * Anything still queued is reset, exactly like `close()`: sweep first.
   */
  shutdown(): void {
    this.#assertOpen('shutdown');
    this.#handle.shutdown();
    if (this.#unixPath !== undefined) this.#unixGated = true;
  }

  /** `listen(2)` again on the same fd, after `shutdown()` (TCP only: on AF_UNIX the shutdown is final). */
  listen(): void {
    this.#assertOpen('listen');
    if (this.#unixGated) throw unixError('listen()', 'a Unix-domain socket shut down for reading refuses connects for good');
    this.#handle.listen(this.#backlog);
  }

  /** The TCP address; a Unix-domain socket has none (see {@link ListenSocket.path}). */
  address(): NativeAddress {
    this.#assertOpen('address');
    this.#assertTcp('address()');
    return this.#handle.address();
  }

  /**
   * Closes the socket (idempotent). Anything still queued is reset by the
   * kernel. A Unix-domain socket's file is unlinked first, if still its own.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onAccept = undefined;
    this.#clearBackoff();
    let unlinkFailure: unknown;
    try {
      this.#unixPath?.release();
    } catch (error) {
      unlinkFailure = error;
    }
    this.#handle.close();
    if (unlinkFailure !== undefined) this.#report(unlinkFailure as Error);
  }

  #startPolling(): void {
    this.#handle.arm(
      (fds) => {
        this.#backoffMs = FIRST_BACKOFF_MS;
        this.#onAccept?.(fds);
      },
      (error) => this.#onPollError(error),
      this.#limit,
    );
  }

  #onPollError(error: NativeSystemError): void {
    // The addon has already disarmed. Whatever the error, try again later:
    // giving up would strand the queue with nothing telling the owner.
    if (this.#onAccept !== undefined) {
      const delay = this.#backoffMs;
      this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
      this.#backoffTimer = setTimeout(() => {
        this.#backoffTimer = undefined;
        if (!this.#closed && this.#onAccept !== undefined) this.#startPolling();
      }, delay);
    }
    this.#report(error);
  }

  #report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error);
  }

  #assertTcp(operation: string): void {
    if (this.#unixPath !== undefined) {
      throw unixError(operation, `it listens on ${JSON.stringify(printable(this.#unixPath.path))}, not on a TCP port`);
    }
  }

  #clearBackoff(): void {
    if (this.#backoffTimer !== undefined) clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new ListenerError('ERR_LISTENER_CLOSED', `Cannot ${operation}: the listener is closed`);
    }
  }
}

function unixError(operation: string, why: string): ListenerError {
  return new ListenerError('ERR_UNIX_LISTENER', `Cannot ${operation} on a Unix-domain listener: ${why}`);
}

/**
 * `net.ipv4.tcp_migrate_req` (Linux >= 5.14, per network namespace): when on,
 * closing or shutting down an SO_REUSEPORT member moves its queued and
 * half-open connections to a sibling instead of resetting them.
 */
export function migratesRequests(): boolean {
  try {
    return fs.readFileSync('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}
