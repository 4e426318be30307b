import net from 'node:net';
import { ListenerError } from '../core/errors.js';
import {
  dropNodeHandle,
  hasListenHandle,
  holdServerOpen,
  installListenHandle,
  connectionsCheckingInterval,
  releaseServerHold,
  removeListenHandle,
  setPipeName,
  skipHttpPreClose,
  watchMaxConnections,
  type ServerHandle,
} from '../core/node-internals.js';
import type { NativeAddress } from '../core/native.js';
import type { Listener } from '../listener.js';

// Servers fed by a listener, or on their way to one: a second listen() must
// fail even while the first is still resolving its host.
const claimed = new WeakSet<net.Server>();

/**
 * A server claimed by a `listen()` or `adopt()` under way, before its
 * listener exists. Watches for a `server.close()` or `server.listen()` while
 * the socket opens.
 */
export class ServerClaim {
  readonly server: net.Server;
  readonly adopting: boolean;
  #closed = false;
  readonly #onClose = (): void => {
    this.#closed = true;
  };

  /** Claims `server`; throws `ERR_SERVER_ALREADY_LISTEN` if it is fed or listening already. */
  constructor(server: net.Server, adopting: boolean) {
    if (claimed.has(server)) {
      throw new ListenerError('ERR_SERVER_ALREADY_LISTEN', 'This server is already fed by a graceful-listener');
    }
    if (!adopting && hasListenHandle(server)) {
      throw new ListenerError(
        'ERR_SERVER_ALREADY_LISTEN',
        'This server already called server.listen(); use adopt(server) to take over its socket',
      );
    }
    claimed.add(server);
    this.server = server;
    this.adopting = adopting;
    // server.close() while the socket opens (a host name resolving) cancels
    // the listen, as it cancels Node's own: it emits the server's 'close'.
    server.once('close', this.#onClose);
  }

  /**
   * After the socket opened: the server must still be ours. A `server.close()`
   * meanwhile cancelled the listen (`ERR_SERVER_CLOSED`); a `server.listen()`
   * meanwhile has its own handle, which ours would hide and leak.
   */
  confirm(): void {
    this.server.removeListener('close', this.#onClose);
    if (this.#closed) {
      this.release();
      throw new ListenerError('ERR_SERVER_CLOSED', 'server.close() was called while listen(server) was opening its socket');
    }
    if (!this.adopting && hasListenHandle(this.server)) {
      this.release();
      throw new ListenerError('ERR_SERVER_ALREADY_LISTEN', 'server.listen() was called while listen(server) was opening its socket');
    }
  }

  release(): void {
    this.server.removeListener('close', this.#onClose);
    claimed.delete(this.server);
  }
}

/**
 * Starts the close of `listener` from a route with no caller to hand the
 * promise to (`server.close()`, the `signal`). A close aborted by `resume()`
 * is the owner's decision, not an error; the listener's close rejects for
 * nothing else.
 */
export function closeUnattended(listener: Listener<net.Socket>): void {
  listener.close().catch((error: Error & { code?: string }) => {
    if (error.code === 'ERR_CLOSE_ABORTED') return;
    if (listener.listenerCount('error') > 0) listener.emit('error', error);
    else process.emitWarning(error);
  });
}

/** The listener as the takeover sees it. */
export type TakeoverListener = Listener<net.Socket> & {
  readonly fd: number;
  readonly path: string | undefined;
  address(): NativeAddress;
};

/**
 * Being Node's server: everything that makes a server fed by a listener
 * behave as if it had called `server.listen()` — a stand-in `server._handle`
 * (so `listening`, `address()`, `ref()`/`unref()` and the `listen()` guard
 * work), `'listening'`, Node's own handle dropped after `adopt()`, and
 * `server.close()` (Node's http close path included) routed to the
 * listener's close. One per generation: when the server is replaced it is
 * retired, and no longer listens as far as Node can tell.
 */
export class ServerTakeover {
  readonly #server: net.Server;
  readonly #listener: TakeoverListener;
  readonly #claim: ServerClaim;
  readonly #handle: ServerHandle;
  readonly #connectionKey: string;
  readonly #undoCloseRoute: () => void;
  readonly #unwatchLimit: () => void;
  // http's connection-checking interval of this takeover (Node makes a new
  // one if the server listens again; that one is not ours to stop).
  #checking: NodeJS.Timeout | undefined;
  // server.close() closed the handle: Node dropped `_handle` and emits the
  // server's 'close' itself once its count allows (see ServerHandle.close).
  #closedByServer = false;
  #released = false;
  #retired = false;

  constructor(claim: ServerClaim, listener: TakeoverListener) {
    claim.confirm();
    this.#claim = claim;
    this.#server = claim.server;
    this.#listener = listener;
    if (claim.adopting) dropNodeHandle(this.#server);
    this.#handle = {
      get fd() {
        return listener.fd;
      },
      // server.close() lands here: the same two-phase close as listener.close().
      close: () => {
        this.#closedByServer = true;
        holdServerOpen(this.#server);
        closeUnattended(this.#listener);
      },
      ref() {
        listener.ref(true);
      },
      unref() {
        listener.ref(false);
      },
    };
    const path = listener.path;
    if (path === undefined) {
      this.#handle.getsockname = (out) => {
        Object.assign(out, listener.address());
        return 0;
      };
      const { address, family, port } = listener.address();
      this.#connectionKey = `${family === 'IPv6' ? 6 : 4}:${address}:${port}`;
    } else {
      // As a pipe's: no getsockname, so server.address() returns the path.
      this.#connectionKey = setPipeName(this.#server, path);
    }
    installListenHandle(this.#server, this.#handle, this.#connectionKey);
    this.#undoCloseRoute = skipHttpPreClose(this.#server);
    this.#unwatchLimit = watchMaxConnections(this.#server, () => listener.refreshLimit());
    this.#checking = connectionsCheckingInterval(this.#server);
  }

  /** `'listening'`, as `server.listen()` emits it. */
  announce(): void {
    this.#server.emit('listening');
    // http starts it from its 'listening' listener (setupConnectionsTracking).
    this.#checking = connectionsCheckingInterval(this.#server);
  }

  /**
   * A close that `server.close()` started was aborted by `resume()`: the
   * server listens again, as far as Node can tell.
   */
  resumed(): void {
    if (!this.#closedByServer || this.#released || this.#retired) return;
    this.#closedByServer = false;
    installListenHandle(this.#server, this.#handle, this.#connectionKey);
    releaseServerHold(this.#server);
  }

  /**
   * Another server took this one's place on the socket: this one no longer
   * listens (`server.listening` is false, `server.close()` reports
   * `ERR_SERVER_NOT_RUNNING`), and Node emits its `'close'` once its last
   * connection is gone. Its connections drain meanwhile.
   */
  retire(): void {
    if (this.#retired || this.#released) return;
    this.#retired = true;
    if (this.#closedByServer) releaseServerHold(this.#server);
    else removeListenHandle(this.#server, this.#handle);
    this.#closedByServer = false;
  }

  /**
   * The server's last connection is gone and the listener feeds it no more:
   * Node's own state comes back, and Node emits the server's `'close'` once
   * its connections are gone, as after `server.close()`.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#undoCloseRoute();
    this.#unwatchLimit();
    // Started by setupConnectionsTracking, cleared by Node's close path,
    // which ours skips: it kept headersTimeout/requestTimeout enforced while
    // draining.
    clearInterval(this.#checking);
    if (this.#closedByServer) releaseServerHold(this.#server);
    else removeListenHandle(this.#server, this.#handle);
    this.#claim.release();
  }
}
