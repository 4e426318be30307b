import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { withEmitter } from '../core/callout.js';
import { keepsAlive, setKeepAlive } from '../core/node-internals.js';

/** Options of the HTTP/1.1 drain. */
export interface HttpDrainOptions {
  /**
   * Milliseconds without a byte received or a response in progress before an
   * idle keep-alive connection is ended while draining. A client's next
   * request already on the wire arrives within one round trip; ending sooner
   * would cut it (the client sees a reset on a request it already wrote).
   * @default 1000
   */
  quietWindow?: number;
  /** Milliseconds to keep reading after the FIN before the socket is destroyed. @default 2000 */
  linger?: number;
}

/** What the HTTP/1.1 drain did, for the close report. */
export interface HttpDrainStats {
  /** Responses sent with `Connection: close` while draining. */
  closedAfterResponse: number;
  /** Idle keep-alive connections ended after the quiet window. */
  endedIdle: number;
}

interface Tracked {
  active: number;
  /** The response to the last request read on the connection, until it is done. */
  latest: http.ServerResponse | undefined;
  bytesAtMark: number;
  quietTimer: NodeJS.Timeout | undefined;
  ended: boolean;
}

const DEFAULT_QUIET_WINDOW_MS = 1000;
const DEFAULT_LINGER_MS = 2000;

/** Whether a server is an HTTP/2 server (`http2.createServer`/`createSecureServer`). */
export function isHttp2Server(server: net.Server): boolean {
  return typeof (server as { updateSettings?: unknown }).updateSettings === 'function';
}

/**
 * Whether HTTP/1.1 requests can reach the server: http and https servers, and
 * a secure HTTP/2 server (with `allowHTTP1` its HTTP/1.1 connections follow
 * these rules; without it none arrive).
 */
export function speaksHttp1(server: net.Server): boolean {
  return (
    server instanceof http.Server ||
    server instanceof https.Server ||
    (isHttp2Server(server) && server instanceof tls.Server)
  );
}

/**
 * HTTP/1.1 in draining mode. Every response not yet started — in flight, or
 * on a connection accepted later — is sent with `Connection: close`, after
 * which Node ends the connection. Idle keep-alive connections are not cut when
 * the drain starts: under load their next request is already on the wire. They
 * are ended (FIN, reading on) only after a quiet window without a byte
 * received or a response in progress, and the window restarts on either.
 */
export class HttpDrain {
  readonly #server: net.Server;
  readonly #quietWindow: number;
  readonly #linger: number;
  readonly #sockets = new Map<net.Socket, Tracked>();
  // Responses this drain switched to `Connection: close`.
  readonly #closing = new WeakSet<http.ServerResponse>();
  readonly #stats: HttpDrainStats = { closedAfterResponse: 0, endedIdle: 0 };
  #draining = false;

  readonly #onConnection = (socket: net.Socket): void => this.track(socket);

  /** Follows `socket` (a TLS socket on a TLS server) if it is one of the listener's. */
  track(socket: net.Socket): void {
    // A TLS server's raw socket is tracked once it is a TLS socket.
    if (this.#server instanceof tls.Server && !(socket instanceof tls.TLSSocket)) return;
    // The server may also have connections of its own (it listened again
    // after server.close()): those are not this drain's.
    if (!this.#owns(socket)) return;
    // An HTTP/2 session on an allowHTTP1 server belongs to the HTTP/2 drain.
    if (socket instanceof tls.TLSSocket && socket.alpnProtocol === 'h2') return;
    if (this.#sockets.has(socket)) return;
    const tracked: Tracked = { active: 0, latest: undefined, bytesAtMark: 0, quietTimer: undefined, ended: false };
    this.#sockets.set(socket, tracked);
    socket.on('close', this.#onSocketClose);
    if (this.#draining) this.#markQuiet(socket, tracked);
  }

  // Handlers shared by every socket and response, called with the emitter as
  // `this` (EventEmitter's contract): no closure per connection or request.
  readonly #onSocketClose = withEmitter((socket: net.Socket) => this.forget(socket));
  readonly #onResponseClose = withEmitter((response: http.ServerResponse) => this.#responseClosed(response));

  #responseClosed(response: http.ServerResponse): void {
    const socket = response.req.socket;
    const owner = this.#sockets.get(socket);
    // The socket closed, or left HTTP ('upgrade'): nothing of it is followed.
    if (owner === undefined) return;
    if (owner.latest === response) owner.latest = undefined;
    owner.active--;
    if (this.#draining && owner.active === 0 && !socket.destroyed) this.#markQuiet(socket, owner);
  }

  readonly #onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    if (request.httpVersionMajor === 2) return;
    const socket = request.socket;
    if (!this.#sockets.has(socket)) this.track(socket);
    const owner = this.#sockets.get(socket);
    if (owner === undefined) return;
    {
      owner.active++;
      clearTimeout(owner.quietTimer);
      owner.quietTimer = undefined;
      // Node answers pipelined requests in order and ends the connection
      // after a `Connection: close` response, dropping those queued behind
      // it: only the last request read may get it. An earlier one whose
      // headers are not out yet goes back to keep-alive.
      const previous = owner.latest;
      owner.latest = response;
      if (previous !== undefined && this.#closing.has(previous) && !previous.headersSent) {
        this.#closing.delete(previous);
        setKeepAlive(previous, true);
        this.#stats.closedAfterResponse--;
      }
    }
    if (this.#draining) this.#closeAfter(response);
    response.on('close', this.#onResponseClose);
  };

  readonly #owns: (socket: net.Socket) => boolean;

  /** `owns` tells the listener's connections from any the server has of its own. */
  constructor(server: net.Server, owns: (socket: net.Socket) => boolean, options: HttpDrainOptions = {}) {
    this.#server = server;
    this.#owns = owns;
    this.#quietWindow = options.quietWindow ?? DEFAULT_QUIET_WINDOW_MS;
    this.#linger = options.linger ?? DEFAULT_LINGER_MS;
    // Prepended so they run before a handler that answers synchronously.
    server.prependListener(server instanceof tls.Server ? 'secureConnection' : 'connection', this.#onConnection);
    server.prependListener('request', this.#onRequest);
  }

  get stats(): HttpDrainStats {
    return { ...this.#stats };
  }

  /** An upgraded socket leaves the HTTP machinery: the drain hook and the deadline own it. */
  forget(socket: net.Socket): void {
    const tracked = this.#sockets.get(socket);
    if (tracked === undefined) return;
    clearTimeout(tracked.quietTimer);
    this.#sockets.delete(socket);
  }

  start(): void {
    this.#draining = true;
    for (const [socket, tracked] of this.#sockets) {
      if (tracked.latest !== undefined) this.#closeAfter(tracked.latest);
      if (tracked.active === 0) this.#markQuiet(socket, tracked);
    }
  }

  stop(): void {
    this.#draining = false;
    for (const tracked of this.#sockets.values()) {
      clearTimeout(tracked.quietTimer);
      tracked.quietTimer = undefined;
    }
  }

  dispose(): void {
    this.stop();
    this.#server.removeListener(this.#server instanceof tls.Server ? 'secureConnection' : 'connection', this.#onConnection);
    this.#server.removeListener('request', this.#onRequest);
  }

  #closeAfter(response: http.ServerResponse): void {
    if (response.headersSent || !keepsAlive(response)) return;
    setKeepAlive(response, false);
    this.#closing.add(response);
    this.#stats.closedAfterResponse++;
  }

  #markQuiet(socket: net.Socket, tracked: Tracked): void {
    if (tracked.ended) return;
    clearTimeout(tracked.quietTimer);
    tracked.bytesAtMark = socket.bytesRead;
    tracked.quietTimer = setTimeout(() => {
      tracked.quietTimer = undefined;
      if (!this.#draining || tracked.active > 0 || socket.destroyed) return;
      if (socket.bytesRead !== tracked.bytesAtMark) {
        this.#markQuiet(socket, tracked);
        return;
      }
      this.#endIdle(socket, tracked);
    }, this.#quietWindow);
  }

  // FIN, and keep reading: a request that still arrives is consumed, so the
  // final close finds no unread input (closing with unread data sends RST).
  #endIdle(socket: net.Socket, tracked: Tracked): void {
    tracked.ended = true;
    this.#stats.endedIdle++;
    socket.end();
    const linger = setTimeout(() => socket.destroy(), this.#linger);
    socket.once('close', () => clearTimeout(linger));
  }
}
