import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { guarded } from '../core/callout.js';
import { acceptedSocketOptions, emitConnection, isBlocked, rawSocketOf, wantsNoDelay } from '../core/node-internals.js';
import type { ConnectionSink, Inherited } from '../generation.js';
import { HttpDrain, isHttp2Server, speaksHttp1, type HttpDrainOptions } from './http-drain.js';
import { Http2Drain, type Http2DrainOptions } from './http2-drain.js';
import type { ServerTakeover } from './takeover.js';

/** How a server's connections are drained. */
export interface DrainOptions {
  /**
   * Called once per connection that no protocol drain owns — every connection
   * of a net or tls server, sockets taken over by `'upgrade'` and CONNECT
   * tunnels (`'connect'`) — when the
   * drain starts, or when it is accepted or upgraded later. The application
   * ends it its own way (a WebSocket close frame, a protocol goodbye).
   * Without a hook such connections run until the close deadline, then end
   * gently. A TLS connection is passed as its TLS socket: one whose handshake
   * is still in progress is passed once the handshake is done (one that never
   * completes is left to the deadline). What the hook throws is rethrown on
   * its own tick and does not stop the drain.
   */
  onDrain?: (socket: net.Socket) => void;
  /** HTTP/1.1 drain options. */
  http?: HttpDrainOptions;
  /** HTTP/2 drain options. */
  http2?: Http2DrainOptions;
}

/**
 * The connection sink of a Node server (net, tls, http, https, http2): wraps
 * accepted fds as Node's accept path does (socket options, connection
 * counting, `'connection'`), and drains them by protocol — the HTTP/1.1 and
 * HTTP/2 drains, and the `onDrain` hook for connections no protocol owns.
 * The server's own state is the takeover's.
 */
export class ServerFeed implements ConnectionSink<net.Socket> {
  readonly #server: net.Server;
  readonly #http: HttpDrain | undefined;
  readonly #http2: Http2Drain | undefined;
  readonly #onDrain: ((socket: net.Socket) => void) | undefined;
  readonly #takeover: ServerTakeover;
  // The listener's connections (raw sockets): the server may have others of
  // its own, after server.close() and a new server.listen().
  readonly #ours = new WeakSet<net.Socket>();
  // Connections no protocol drain owns, by their raw socket.
  readonly #hooked = new WeakSet<net.Socket>();
  readonly #upgraded = new WeakSet<net.Socket>();
  #hookCalls = 0;
  #draining = false;
  // TLS sockets by their raw socket, to end a finished session with
  // close_notify instead of a bare FIN underneath it.
  readonly #secure = new WeakMap<net.Socket, tls.TLSSocket>();
  readonly #onSecure = (tlsSocket: tls.TLSSocket): void => {
    const raw = rawSocketOf(tlsSocket);
    if (raw !== undefined) this.#secure.set(raw, tlsSocket);
  };
  // Connections whose hook waits for their TLS handshake: over a handshake in
  // progress the application cannot speak its protocol, and a FIN there is a
  // failed connection to the TLS client.
  readonly #handshaking = new WeakSet<net.Socket>();
  // Appended, so the server's own 'secureConnection' handler has the socket first.
  readonly #onHandshakeDone = (tlsSocket: tls.TLSSocket): void => {
    const raw = rawSocketOf(tlsSocket);
    if (raw !== undefined && this.#handshaking.delete(raw) && this.#draining) this.#hook(raw);
  };

  // A socket taken over by 'upgrade' or 'connect' (a CONNECT tunnel) leaves
  // the HTTP machinery: the drain hook and the deadline own it, never the
  // HTTP drain's quiet window.
  readonly #onHandOff = (request: { socket: net.Socket }): void => {
    if (!this.#ours.has(rawSocketOf(request.socket) ?? request.socket)) return;
    this.#http?.forget(request.socket);
    const raw = rawSocketOf(request.socket) ?? request.socket;
    this.#upgraded.add(raw);
    if (this.#draining) this.#hook(raw);
  };
  // Node hands a request to 'upgrade' or 'connect' only when the server has
  // listeners for it (a CONNECT without one is destroyed), so ours is
  // attached only beside at least one of the user's.
  readonly #watching = new Set<'upgrade' | 'connect'>();
  readonly #syncHandOffWatch = (): void => {
    for (const event of ['upgrade', 'connect'] as const) {
      const watching = this.#watching.has(event);
      const users = this.#server.listenerCount(event) - (watching ? 1 : 0);
      if (users > 0 && !watching) {
        this.#watching.add(event);
        this.#server.prependListener(event, this.#onHandOff);
      } else if (users === 0 && watching) {
        // Keep watching: a listener the user adds later is followed again.
        this.#watching.delete(event);
        this.#server.removeListener(event, this.#onHandOff);
      }
    }
  };
  readonly #onListenerChange = (event: string | symbol): void => {
    // 'newListener' fires before the listener is added: look once it is.
    if (event === 'upgrade' || event === 'connect') queueMicrotask(this.#syncHandOffWatch);
  };

  constructor(server: net.Server, takeover: ServerTakeover, options: DrainOptions = {}) {
    this.#server = server;
    this.#takeover = takeover;
    const owns = (socket: net.Socket): boolean => this.#ours.has(rawSocketOf(socket) ?? socket);
    this.#http = speaksHttp1(server) ? new HttpDrain(server, owns, options.http) : undefined;
    this.#http2 = isHttp2Server(server) ? new Http2Drain(server, owns, options.http2) : undefined;
    this.#onDrain = options.onDrain;
    if (server instanceof tls.Server) {
      server.prependListener('secureConnection', this.#onSecure);
      server.on('secureConnection', this.#onHandshakeDone);
    }
    if (this.#http !== undefined) {
      server.on('newListener', this.#onListenerChange);
      server.on('removeListener', this.#onListenerChange);
      this.#syncHandOffWatch();
    }
  }

  wrap(fd: number, inherited: Inherited): net.Socket {
    try {
      return new net.Socket(acceptedSocketOptions(this.#server, fd, inherited.noDelay === true));
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  deliver(socket: net.Socket, draining: boolean): void {
    // A listener's 'connection' handler may have destroyed it already:
    // counting it now would never be undone (Socket._destroy has run).
    if (socket.destroyed) return;
    if (isBlocked(this.#server, socket)) {
      socket.destroy();
      return;
    }
    this.#ours.add(socket);
    if (draining && this.#ownsNoProtocol(socket)) {
      // After the server's handler, which may still end it or set it up.
      try {
        emitConnection(this.#server, socket);
      } finally {
        this.#hook(socket);
      }
      return;
    }
    emitConnection(this.#server, socket);
  }

  draining(on: boolean, connections: Iterable<net.Socket>): void {
    this.#draining = on;
    if (!on) {
      this.#http?.stop();
      this.#http2?.stop();
      this.#takeover.resumed();
      return;
    }
    this.#http?.start();
    this.#http2?.start();
    for (const socket of connections) {
      if (this.#ownsNoProtocol(socket) || this.#upgraded.has(socket)) this.#hook(socket);
    }
  }

  /**
   * A connection the server accepted itself before the listener took over
   * (an http or https server's, after adopt()): drained like the others.
   */
  include(socket: net.Socket): void {
    this.#ours.add(socket);
    const raw = rawSocketOf(socket);
    if (raw !== undefined) this.#ours.add(raw);
    this.#http?.track(socket);
  }

  stats(): Record<string, unknown> {
    return {
      ...(this.#http !== undefined ? { http: this.#http.stats } : {}),
      ...(this.#http2 !== undefined ? { http2: this.#http2.stats } : {}),
      drainHooks: this.#hookCalls,
    };
  }

  #ownsNoProtocol(_socket: net.Socket): boolean {
    return this.#http === undefined && this.#http2 === undefined;
  }

  // Each connection's hook runs once, whichever path reaches it first.
  #hook(socket: net.Socket): void {
    if (this.#onDrain === undefined || this.#hooked.has(socket) || socket.destroyed) return;
    if (this.#server instanceof tls.Server && !this.#secure.has(socket)) {
      this.#handshaking.add(socket);
      return;
    }
    this.#hooked.add(socket);
    this.#hookCalls++;
    const onDrain = this.#onDrain;
    guarded(() => onDrain(this.#secure.get(socket) ?? socket));
  }

  endGently(socket: net.Socket): void {
    const target = this.#secure.get(socket) ?? socket;
    // Reading on discards what the peer sent: closing with unread data would
    // send RST and destroy the response still queued for the peer.
    target.resume();
    target.end();
  }

  noDelay(): boolean {
    return wantsNoDelay(this.#server);
  }

  limit(): number | undefined {
    const max = this.#server.maxConnections;
    return typeof max === 'number' && max >= 0 && Number.isFinite(max) ? max : undefined;
  }

  closed(): void {
    this.#http?.dispose();
    this.#http2?.dispose();
    this.#server.removeListener('newListener', this.#onListenerChange);
    this.#server.removeListener('removeListener', this.#onListenerChange);
    this.#server.removeListener('upgrade', this.#onHandOff);
    this.#server.removeListener('connect', this.#onHandOff);
    this.#server.removeListener('secureConnection', this.#onSecure);
    this.#server.removeListener('secureConnection', this.#onHandshakeDone);
    this.#takeover.release();
  }
}
