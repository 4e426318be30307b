import net from 'node:net';
import { ListenerError } from '../core/errors.js';
import {
  dropNodeHandle,
  hasListenHandle,
  holdServerOpen,
  installListenHandle,
  releaseServerHold,
  removeListenHandle,
  skipHttpPreClose,
  stopConnectionsChecking,
  type ServerHandle,
} from '../core/node-internals.js';
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
 * Being Node's server: everything that makes a server fed by a listener
 * behave as if it had called `server.listen()` — a stand-in `server._handle`
 * (so `listening`, `address()`, `ref()`/`unref()` and the `listen()` guard
 * work), `'listening'`, Node's own handle dropped after `adopt()`, and every
 * close route: `server.close()` (Node's http close path included), the
 * `signal` and `listener.close()` meet in the listener's close, with one
 * policy for a close aborted by `resume()`.
 */
export class ServerTakeover {
  readonly #server: net.Server;
  readonly #listener: Listener<net.Socket>;
  readonly #claim: ServerClaim;
  readonly #handle: ServerHandle;
  readonly #connectionKey: string;
  readonly #undoCloseRoute: () => void;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#closeUnattended();
  // server.close() closed the handle: Node dropped `_handle` and emits the
  // server's 'close' itself once its count allows (see ServerHandle.close).
  #closedByServer = false;
  #released = false;

  constructor(claim: ServerClaim, listener: Listener<net.Socket>, signal?: AbortSignal) {
    claim.confirm();
    this.#claim = claim;
    this.#server = claim.server;
    this.#listener = listener;
    if (claim.adopting) dropNodeHandle(this.#server);
    this.#handle = {
      get fd() {
        return listener.fd;
      },
      getsockname(out) {
        Object.assign(out, listener.address());
        return 0;
      },
      // server.close() lands here: the same two-phase close as listener.close().
      close: () => {
        this.#closedByServer = true;
        holdServerOpen(this.#server);
        this.#closeUnattended();
      },
      ref() {
        listener.ref(true);
      },
      unref() {
        listener.ref(false);
      },
    };
    const { address, family, port } = listener.address();
    this.#connectionKey = `${family === 'IPv6' ? 6 : 4}:${address}:${port}`;
    installListenHandle(this.#server, this.#handle, this.#connectionKey);
    this.#undoCloseRoute = skipHttpPreClose(this.#server);
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** `'listening'`, as `server.listen()` emits it. */
  announce(): void {
    this.#server.emit('listening');
  }

  /**
   * A close that `server.close()` started was aborted by `resume()`: the
   * server listens again, as far as Node can tell.
   */
  resumed(): void {
    if (!this.#closedByServer || this.#released) return;
    this.#closedByServer = false;
    installListenHandle(this.#server, this.#handle, this.#connectionKey);
    releaseServerHold(this.#server);
  }

  /**
   * The server's last connection is gone and the listener feeds it no more:
   * Node's own state comes back, and Node emits the server's `'close'` once
   * its connections are gone, as after `server.close()`.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#undoCloseRoute();
    // Started by setupConnectionsTracking, cleared by Node's close path,
    // which ours skips: it kept headersTimeout/requestTimeout enforced while
    // draining.
    stopConnectionsChecking(this.#server);
    if (this.#closedByServer) releaseServerHold(this.#server);
    else removeListenHandle(this.#server, this.#handle);
    this.#claim.release();
  }

  // The close routes with no caller to hand the promise to (server.close(),
  // the signal) end here. A close aborted by resume() is the owner's
  // decision, not an error; the listener's close rejects for nothing else.
  #closeUnattended(): void {
    const listener = this.#listener;
    listener.close().catch((error: Error & { code?: string }) => {
      if (error.code === 'ERR_CLOSE_ABORTED') return;
      if (listener.listenerCount('error') > 0) listener.emit('error', error);
      else process.emitWarning(error);
    });
  }
}
