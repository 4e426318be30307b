import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import {
  acceptedSocketOptions,
  adoptConnection,
  installListenHandle,
  isBlocked,
  rawSocketOf,
  removeListenHandle,
  type ListenHandle,
} from '../core/node-internals.js';
import type { NativeAddress } from '../core/native.js';
import type { ConnectionSink } from '../listener.js';
import { HttpDrain } from './http-drain.js';

/** What the feed needs from the listener that owns it. */
export interface FeedOwner {
  readonly fd: number;
  address(): NativeAddress;
  close(): Promise<unknown>;
  ref(on: boolean): void;
}

/**
 * Feeds accepted fds to a Node server (net, tls, http, https, http2) as if the
 * server had listened itself: the same socket options, connection counting,
 * `'listening'`, `server.address()`, `server.listening`, and `server.close()`
 * routed to the listener's two-phase close.
 */
export class ServerFeed implements ConnectionSink<net.Socket> {
  readonly #server: net.Server;
  readonly #http: HttpDrain | undefined;
  readonly #handle: ListenHandle;
  // TLS sockets by their raw socket, to end a finished session with
  // close_notify instead of a bare FIN underneath it.
  readonly #secure = new WeakMap<net.Socket, tls.TLSSocket>();
  readonly #onSecure = (tlsSocket: tls.TLSSocket): void => {
    const raw = rawSocketOf(tlsSocket);
    if (raw !== undefined) this.#secure.set(raw, tlsSocket);
  };

  constructor(server: net.Server, owner: FeedOwner) {
    this.#server = server;
    this.#http = HttpDrain.applies(server) ? new HttpDrain(server) : undefined;
    if (server instanceof tls.Server) server.prependListener('secureConnection', this.#onSecure);
    this.#handle = {
      get fd() {
        return owner.fd;
      },
      getsockname(out) {
        Object.assign(out, owner.address());
        return 0;
      },
      // server.close() lands here: the same two-phase close as listener.close().
      close() {
        owner.close().catch(() => {});
      },
      ref() {
        owner.ref(true);
      },
      unref() {
        owner.ref(false);
      },
    };
    const { address, family, port } = owner.address();
    installListenHandle(server, this.#handle, `${family === 'IPv6' ? 6 : 4}:${address}:${port}`);
  }

  wrap(fd: number): net.Socket {
    try {
      return new net.Socket({ fd, ...acceptedSocketOptions(this.#server) });
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
  }

  deliver(socket: net.Socket, _draining: boolean): void {
    if (isBlocked(this.#server, socket)) {
      socket.destroy();
      return;
    }
    adoptConnection(this.#server, socket);
    this.#server.emit('connection', socket);
  }

  draining(on: boolean): void {
    if (on) this.#http?.start();
    else this.#http?.stop();
  }

  endGently(socket: net.Socket): void {
    const target = this.#secure.get(socket) ?? socket;
    // Reading on discards what the peer sent: closing with unread data would
    // send RST and destroy the response still queued for the peer.
    target.resume();
    target.end();
  }

  limit(): number | undefined {
    const max = this.#server.maxConnections;
    return typeof max === 'number' && max >= 0 && Number.isFinite(max) ? max : undefined;
  }

  closed(): void {
    this.#http?.dispose();
    this.#server.removeListener('secureConnection', this.#onSecure);
    removeListenHandle(this.#server, this.#handle);
  }
}
