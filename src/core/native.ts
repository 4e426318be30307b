import path from 'node:path';
import nodeGypBuild from 'node-gyp-build';

/** A system error as the addon throws it: the same shape as Node's own. */
export interface NativeSystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

export interface NativeAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** One handshake in SYN_RECV, as sock_diag reports it. */
export interface NativeHandshakeRequest {
  /** `peer:port>local:port` (IPv6 in brackets): unique while the request lives, stable across calls. */
  key: string;
  /** `idiag_retrans`: SYN-ACKs sent again so far (on the timer, or answering a retransmitted SYN). */
  retrans: number;
  /** `idiag_expires`: ms until the request's timer fires next (0: due now). */
  expiresMs: number;
}

export interface NativeSocketInfo {
  stream: boolean;
  inet: boolean;
  tcp: boolean;
  listening: boolean;
  /** SO_REUSEPORT is set. */
  reusePort: boolean;
}

/** One listening socket owned by the addon. Mechanism only: no state, no policy. */
export interface NativeHandle {
  readonly fd: number;
  /**
   * Starts polling; `onAccept` gets each batch of accepted fds (CLOEXEC,
   * non-blocking), at most `limit` per batch (default and cap: `acceptBatch`).
   */
  arm(
    onAccept: (fds: number[]) => void,
    onError: (error: NativeSystemError) => void,
    limit?: number,
  ): void;
  disarm(): void;
  /** Accepts until EAGAIN now; with `shutdown`, `shutdown(SHUT_RD)` and disarm in the same step. */
  sweep(shutdown: boolean): { fds: number[]; error: NativeSystemError | null };
  /** Whether an armed listener keeps the event loop alive. */
  ref(on: boolean): void;
  queueDepth(): { queued: number; backlog: number };
  /** Requests in SYN_RECV on this listener's port (and address, unless a wildcard), via sock_diag. */
  handshakes(): number;
  /** The same requests, one entry each. */
  handshakeRequests(): NativeHandshakeRequest[];
  gate(on: boolean): void;
  /** `TCP_NODELAY` on the listening socket; accepted connections inherit it (Linux). */
  noDelay(on: boolean): void;
  /**
   * SO_REUSEPORT steering: every new SYN of the group goes to the member at
   * `index` (listen() order) through `SO_ATTACH_REUSEPORT_CBPF`; a negative
   * index detaches the program (`SO_DETACH_REUSEPORT_BPF`).
   */
  steer(index: number): void;
  /** LISTEN sockets on this socket's address and port (sock_diag), this one included: its SO_REUSEPORT group. */
  reusePortMembers(): number;
  shutdown(): void;
  listen(backlog: number): void;
  address(): NativeAddress;
  close(): void;
}

export interface NativeBinding {
  open(
    family: 4 | 6,
    address: string,
    port: number,
    backlog: number,
    reusePort: boolean,
    ipv6Only: boolean,
  ): NativeHandle;
  /**
   * A listening AF_UNIX stream socket (CLOEXEC, non-blocking) bound to
   * `path` (a leading NUL: abstract), its file chmod'ed to `mode` between
   * bind and listen unless `mode` is negative. Its handle's `queueDepth()`
   * comes from sock_diag; `address()` returns the name bound, as a string.
   */
  openUnix(path: string, backlog: number, mode: number): NativeHandle;
  /**
   * Takes a `F_DUPFD_CLOEXEC` duplicate of a listening TCP socket and makes it
   * non-blocking (a flag of the shared open file description). Anything else
   * is refused before the flag is touched.
   */
  adopt(fd: number): NativeHandle;
  /** What `fd` is, read without touching it; throws `ENOTSOCK` for a file that is not a socket. */
  inspect(fd: number): NativeSocketInfo;
  readonly acceptBatch: number;
  /**
   * connect(2) to the AF_UNIX stream socket at `path` within `timeoutMs`;
   * returns a CLOEXEC, non-blocking fd. ENOENT, ECONNREFUSED, ETIMEDOUT… as
   * system errors.
   */
  unixConnect(path: string, timeoutMs: number): number;
  /** sendmsg(2) of all of `data`, with `fds` as SCM_RIGHTS, on a connected AF_UNIX stream socket. */
  sendWithFds(fd: number, data: Buffer, fds: number[]): void;
  /**
   * recvmsg(2) until a newline, EOF or `maxBytes`, waiting at most
   * `timeoutMs` in all (ETIMEDOUT). Received fds are CLOEXEC
   * (MSG_CMSG_CLOEXEC); on any error they are closed before it is thrown.
   */
  receiveWithFds(fd: number, timeoutMs: number, maxBytes: number): { data: Buffer; fds: number[]; eof: boolean };
  /** SO_PEERCRED of a connected AF_UNIX socket. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** One datagram to the AF_UNIX datagram socket at `path` (`@name`: abstract): sd_notify(3). */
  notify(path: string, message: string): void;
}

// Both src/ (tests) and dist/ (the package) sit one level below the package root.
const packageRoot = path.resolve(__dirname, '..', '..');

let loaded: NativeBinding | undefined;

/** The only place the compiled addon is loaded. */
export function loadBinding(): NativeBinding {
  loaded ??= nodeGypBuild(packageRoot) as NativeBinding;
  return loaded;
}
