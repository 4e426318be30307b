// Every touch of Node's private server/socket internals lives here, each with
// the Node behaviour it mirrors, so a Node upgrade has one file to check. The
// parity tests run on Node 20, 22 and 24.
import diagnosticsChannel from 'node:diagnostics_channel';
import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

// lib/net.js `onconnection` publishes every accepted socket here (APM tools
// subscribe to it).
const netServerSocket = diagnosticsChannel.channel('net.server.socket');

/** What `net.Server` calls on `server._handle` (lib/net.js). */
export interface ServerHandle {
  readonly fd: number;
  /** Absent on a pipe's handle: `server.address()` then returns `server._pipeName`. */
  getsockname?(out: Record<string, unknown>): number;
  /**
   * `Server.close` calls it, then sets `_handle = null` and calls
   * `_emitCloseIfDrained()` itself: the server's `'close'` is Node's to emit
   * from there (once its connections are gone), even when the listener
   * closes synchronously inside this call.
   */
  close(callback?: () => void): void;
  ref(): void;
  unref(): void;
}

interface ServerInternals {
  _handle?: (Partial<ServerHandle> & { fd?: number }) | null;
  _connectionKey?: string;
  _pipeName?: string;
  _listeningId?: number;
  _connections: number;
  _emitCloseIfDrained?: () => void;
  highWaterMark?: number;
  keepAliveInitialDelay?: number;
  blockList?: { check(address: string, family: string): boolean };
}

function internals(server: net.Server): ServerInternals {
  return server as unknown as ServerInternals;
}

/**
 * The fd of a `net.Server` that `server.listen()` opened: `server._handle` is
 * the TCP wrap from lib/net.js `setupListenHandle`; its `fd` getter returns
 * the OS socket.
 */
export function listeningFd(server: net.Server): number | undefined {
  const fd = internals(server)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Whether the server has a listen handle (Node's own or one we installed). */
export function hasListenHandle(server: net.Server): boolean {
  return internals(server)._handle != null;
}

/**
 * Closes the TCP wrap that `server.listen()` created without `server.close()`
 * (which would emit `'close'` and, for http, end idle connections). The socket
 * survives while another fd (our dup) refers to it, queue included.
 */
export function dropNodeHandle(server: net.Server): void {
  const s = internals(server);
  s._handle?.close?.();
  s._handle = null;
}

/**
 * Installs a listen handle of ours as `server._handle`. With it,
 * `server.listening` (`!!(_handle && _connectionKey)`), `server.address()`
 * (`_handle.getsockname`), `server.ref()/unref()`, `server.close()` and the
 * `ERR_SERVER_ALREADY_LISTEN` guard of `server.listen()` behave as after
 * `server.listen()`; `_connectionKey` has the `family:address:port` shape
 * that `setupListenHandle` gives it.
 */
export function installListenHandle(server: net.Server, handle: ServerHandle, key: string): void {
  const s = internals(server);
  s._handle = handle as ServerInternals['_handle'];
  s._connectionKey = key;
  // A server.listen() still resolving its host would go on to call
  // `_handle.listen()` on our handle (setupListenHandle: "have a handle
  // already"). Bump `_listeningId` as `Server.close` does: lookupAndListen
  // and listenInCluster drop a listen whose id is stale.
  if (typeof s._listeningId === 'number') s._listeningId++;
}

/**
 * A server listening on a Unix-domain socket: lib/net.js `Server.listen`
 * keeps the path as `_pipeName`, and `server.address()` returns it when the
 * handle has no `getsockname` (a Pipe wrap has none); `listenInCluster`
 * gives it the connection key `-1:path:-1`, returned here. Node leaves
 * `_pipeName` set after the close (`address()` still returns the path), and
 * so does this.
 */
export function setPipeName(server: net.Server, path: string): string {
  internals(server)._pipeName = path;
  return `-1:${path}:-1`;
}

/**
 * Removes our handle if it is still the server's and lets Node emit the
 * server's `'close'` once its connections are gone, as `Server.close` does
 * after `_handle = null` (`_emitCloseIfDrained`).
 */
export function removeListenHandle(server: net.Server, handle: ServerHandle): void {
  const s = internals(server);
  if (s._handle !== handle) return;
  s._handle = null;
  s._emitCloseIfDrained?.();
}

/**
 * The interval lib/_http_server.js `setupConnectionsTracking` starts to
 * enforce `headersTimeout` and `requestTimeout` (stored under a symbol whose
 * description is `http.server.connectionsCheckingInterval`), or undefined for
 * a server that has none (net, tls, http2 without allowHTTP1,
 * `connectionsCheckingInterval: 0`).
 */
export function connectionsCheckingInterval(server: net.Server): NodeJS.Timeout | undefined {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description === 'http.server.connectionsCheckingInterval') {
      const value = (server as unknown as Record<symbol, unknown>)[symbol];
      return value != null && typeof value === 'object' ? (value as NodeJS.Timeout) : undefined;
    }
  }
  return undefined;
}

/**
 * On Node ≥ 19, `http.Server.prototype.close` (and https's, and an http2
 * secure server's with `allowHTTP1`) runs `httpServerPreClose` first: it
 * calls `closeIdleConnections()`, which destroys every keep-alive connection
 * between two requests — one whose next request already sits unread in its
 * receive buffer is answered with RST — before `net.Server.prototype.close`
 * reaches `_handle.close()`. An own `close` on the server skips that step and
 * runs the net (or tls) close, which reaches our handle: the drain owns idle
 * connections. The callback, `ERR_SERVER_NOT_RUNNING` and `'close'` stay
 * Node's. Returns what undoes it.
 */
export function skipHttpPreClose(server: net.Server): () => void {
  type Close = (this: net.Server, callback?: (error?: Error) => void) => net.Server;
  const base = (server instanceof tls.Server ? tls.Server.prototype.close : net.Server.prototype.close) as Close;
  if (server.close === base) return () => {};
  const close = function close(this: net.Server, callback?: (error?: Error) => void): net.Server {
    return base.call(this, callback);
  };
  Object.defineProperty(server, 'close', { value: close, configurable: true, writable: true, enumerable: false });
  return () => {
    if (Object.getOwnPropertyDescriptor(server, 'close')?.value === close) delete (server as { close?: unknown }).close;
  };
}

/**
 * While a drain started by `server.close()` is still accepting (handshakes in
 * SYN_RECV, an overflowed queue), Node must not take a moment with no
 * connections for the end: `_emitCloseIfDrained` emits `'close'` whenever
 * `_handle` is null and `_connections` is 0. The listener holds one count in
 * `_connections` for itself (as Unit's `lev->count` does) until phase 2.
 */
export function holdServerOpen(server: net.Server): void {
  internals(server)._connections++;
}

/** Drops the listener's own count and lets Node emit `'close'` if nothing else is open. */
export function releaseServerHold(server: net.Server): void {
  const s = internals(server);
  s._connections--;
  s._emitCloseIfDrained?.();
}

/** Whether the server sets TCP_NODELAY on each connection it accepts (`onconnection`). */
export function wantsNoDelay(server: net.Server): boolean {
  return (server as unknown as { noDelay?: boolean }).noDelay === true;
}

/**
 * The options of `new net.Socket()` for an accepted fd, as lib/net.js
 * `onconnection` derives them from the server. `noDelay` says whether the
 * fd already has TCP_NODELAY (inherited from the listening socket): the
 * Socket constructor only records it (`this[kSetNoDelay]`, no syscall for a
 * socket made of an fd), so `setNoDelay(true)` then makes no syscall, and a
 * later `setNoDelay(false)` still reaches the kernel — the state Node's
 * `onconnection` leaves (`socket[kSetNoDelay] = true`).
 */
export function acceptedSocketOptions(
  server: net.Server,
  fd: number,
  noDelay: boolean,
): net.SocketConstructorOpts & { pauseOnCreate: boolean; highWaterMark: number | undefined; noDelay: boolean } {
  const s = server as unknown as { allowHalfOpen?: boolean; pauseOnConnect?: boolean; highWaterMark?: number };
  return {
    fd,
    allowHalfOpen: s.allowHalfOpen === true,
    pauseOnCreate: s.pauseOnConnect === true,
    readable: true,
    writable: true,
    // Streams read an undefined highWaterMark as the default.
    highWaterMark: s.highWaterMark,
    noDelay,
  };
}

/**
 * What `onconnection` does with a new socket: TCP_NODELAY and keep-alive from
 * the server's options (`keepAliveInitialDelay` is stored in seconds),
 * connection counting (`_connections`, decremented by `Socket._destroy`
 * through `socket._server`), `socket.server`, then `'connection'`, then the
 * `net.server.socket` diagnostics channel.
 */
export function emitConnection(server: net.Server, socket: net.Socket): void {
  const s = server as unknown as { noDelay?: boolean; keepAlive?: boolean };
  // A no-op (no syscall) on a socket made with `noDelay: true`.
  if (s.noDelay) socket.setNoDelay(true);
  if (s.keepAlive) socket.setKeepAlive(true, (internals(server).keepAliveInitialDelay ?? 0) * 1000);
  internals(server)._connections++;
  const counted = socket as unknown as { server: net.Server; _server: net.Server };
  counted.server = server;
  counted._server = server;
  server.emit('connection', socket);
  if (netServerSocket.hasSubscribers) netServerSocket.publish({ socket });
}

/**
 * Node ≥ 22.13 `server.blockList`: `onconnection` closes blocked peers before
 * `'connection'`. Like `onconnection`, it asks for the peer (a getpeername(2))
 * only when the server has a block list.
 */
export function isBlocked(server: net.Server, socket: net.Socket): boolean {
  const blockList = internals(server).blockList;
  if (blockList == null) return false;
  const address = socket.remoteAddress;
  const family = socket.remoteFamily;
  if (address === undefined || family === undefined) return false;
  return blockList.check(address, family.toLowerCase());
}

/**
 * The TLS server's wrapped socket keeps the raw socket it was made from as
 * `tlsSocket._parent` (lib/_tls_wrap.js `tlsConnectionListener`).
 */
export function rawSocketOf(tlsSocket: net.Socket): net.Socket | undefined {
  const parent = (tlsSocket as unknown as { _parent?: unknown })._parent;
  return parent != null && typeof parent === 'object' ? (parent as net.Socket) : undefined;
}

/**
 * Whether Node keeps the connection open after this response. It is
 * lib/_http_outgoing.js `shouldKeepAlive`, which `_storeHeader` reads when
 * the head is written: set to false, Node sends `Connection: close` and ends
 * the connection after the response (lib/_http_server.js `resOnFinish`).
 */
export function keepsAlive(response: http.ServerResponse): boolean {
  return (response as unknown as { shouldKeepAlive: boolean }).shouldKeepAlive;
}

/** Sets whether Node keeps the connection open after this response (see {@link keepsAlive}). */
export function setKeepAlive(response: http.ServerResponse, on: boolean): void {
  (response as unknown as { shouldKeepAlive: boolean }).shouldKeepAlive = on;
}

/**
 * The fd under a connected `net.Socket` (a TCP or Pipe wrap's `fd` getter),
 * or undefined once it is closed.
 */
export function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The sockets an http or https server has open now: lib/_http_server.js
 * keeps each connection's parser in a ConnectionsList (under the symbol
 * `http.server.connections`) for `closeAllConnections()`; `all()` lists
 * them, each with its `socket`. Empty for other servers, which keep no list.
 */
export function openHttpSockets(server: net.Server): net.Socket[] {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description !== 'http.server.connections') continue;
    const list = (server as unknown as Record<symbol, { all?: () => { socket?: net.Socket | null }[] }>)[symbol];
    if (typeof list?.all !== 'function') return [];
    return list
      .all()
      .map((parser) => parser.socket)
      .filter((socket): socket is net.Socket => socket != null && !socket.destroyed);
  }
  return [];
}

/**
 * Makes `server.maxConnections` an accessor that calls `onChange` after
 * each assignment (Node reads the plain property at each accept; the
 * listener, which arms accept by the limit, must hear of a change). Returns
 * what restores the plain property, with its current value.
 */
export function watchMaxConnections(server: net.Server, onChange: () => void): () => void {
  let value = server.maxConnections;
  Object.defineProperty(server, 'maxConnections', {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (next: number) => {
      value = next;
      onChange();
    },
  });
  return () => {
    Object.defineProperty(server, 'maxConnections', { configurable: true, enumerable: true, writable: true, value });
  };
}
