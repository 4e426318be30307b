import net from 'node:net';
import { ListenerError, invalidArgType } from './core/errors.js';
import { ListenSocket, type OpenOptions } from './core/listen-socket.js';
import { dropNodeHandle, hasListenHandle, listeningFd } from './core/node-internals.js';
import { validateInteger, validateObject } from './core/validate.js';

import { Listener } from './listener.js';
import { ServerFeed, type DrainOptions } from './server/feed.js';

const MAX_MS = 2 ** 31 - 1;

/** Options for {@link listen}. */
export interface ListenOptions extends OpenOptions, DrainOptions {
  /** Adopt this listening fd (dup'd; the caller keeps the original) instead of opening a socket. */
  fd?: number;
  /** Aborting it closes the listener (two-phase, default timeouts). */
  signal?: AbortSignal;
}

// Servers fed by a listener, or on their way to one: a second listen() must
// fail even while the first is still resolving its host.
const claimed = new WeakSet<net.Server>();

function validateServer(server: unknown): asserts server is net.Server {
  if (!(server instanceof net.Server)) {
    throw invalidArgType('server', 'an instance of net.Server (net, tls, http, https or http2)', server);
  }
}

function claim(server: net.Server, adopting: boolean): void {
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
}

function validateSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return signal;
}

/** Options for {@link adopt}. */
export interface AdoptOptions extends DrainOptions {
  /** Aborting it closes the listener (two-phase, default timeouts). */
  signal?: AbortSignal;
}

function validateDrainOptions(options: DrainOptions): DrainOptions {
  if (options.onDrain !== undefined && typeof options.onDrain !== 'function') {
    throw invalidArgType('options.onDrain', 'of type function', options.onDrain);
  }
  if (options.http !== undefined) {
    const http = validateObject('options.http', options.http);
    if (http.quietWindow !== undefined) validateInteger('options.http.quietWindow', http.quietWindow, 0, MAX_MS);
    if (http.linger !== undefined) validateInteger('options.http.linger', http.linger, 0, MAX_MS);
  }
  if (options.http2 !== undefined) {
    const http2 = validateObject('options.http2', options.http2);
    if (http2.pingTimeout !== undefined) validateInteger('options.http2.pingTimeout', http2.pingTimeout, 0, MAX_MS);
  }
  return { onDrain: options.onDrain, http: options.http, http2: options.http2 };
}

// The close routes with no caller to hand the promise to (server.close(),
// the signal) end here. A close aborted by resume() is the owner's decision,
// not an error; the listener's close rejects for nothing else.
function closeUnattended(listener: Listener<net.Socket>): void {
  listener.close().catch((error: Error & { code?: string }) => {
    if (error.code === 'ERR_CLOSE_ABORTED') return;
    if (listener.listenerCount('error') > 0) listener.emit('error', error);
    else process.emitWarning(error);
  });
}

function start(
  server: net.Server,
  socket: ListenSocket,
  signal: AbortSignal | undefined,
  drain: DrainOptions,
): Listener<net.Socket> {
  let listener!: Listener<net.Socket>;
  const feed = new ServerFeed(server, {
    get fd() {
      return socket.fd;
    },
    address: () => socket.address(),
    close: () => closeUnattended(listener),
    ref: (on) => listener.ref(on),
  }, drain);
  listener = new Listener(socket, feed);
  listener.once('close', () => claimed.delete(server));
  if (signal !== undefined) {
    const onAbort = (): void => closeUnattended(listener);
    signal.addEventListener('abort', onAbort, { once: true });
    listener.once('close', () => signal.removeEventListener('abort', onAbort));
  }
  return listener;
}

/**
 * Opens a listening socket owned by the addon and feeds `server` from it, in
 * place of `server.listen()`. The server emits `'listening'` and behaves as if
 * it had listened; `listener.close()` (or `server.close()`) closes in two
 * phases without resetting any client whose handshake completed.
 */
export async function listen(server: net.Server, options: ListenOptions = {}): Promise<Listener<net.Socket>> {
  validateServer(server);
  validateObject('options', options);
  const signal = validateSignal(options.signal);
  const drain = validateDrainOptions(options);
  signal?.throwIfAborted();
  claim(server, false);
  // server.close() while the socket opens (a host name resolving) cancels
  // the listen, as it cancels Node's own: it emits the server's 'close'.
  let serverClosed = false;
  const onServerClose = (): void => {
    serverClosed = true;
  };
  server.once('close', onServerClose);
  let socket: ListenSocket;
  try {
    socket =
      options.fd !== undefined
        ? ListenSocket.adopt(options.fd)
        : await ListenSocket.open(options);
  } catch (error) {
    claimed.delete(server);
    throw error;
  } finally {
    server.removeListener('close', onServerClose);
  }
  if (signal?.aborted) {
    claimed.delete(server);
    socket.close();
    signal.throwIfAborted();
  }
  if (serverClosed) {
    claimed.delete(server);
    socket.close();
    throw new ListenerError('ERR_SERVER_CLOSED', 'server.close() was called while listen(server) was opening its socket');
  }
  // server.listen() may have run while the socket was opening: its handle
  // stays, ours would hide it (and leak it) if installed over it.
  if (hasListenHandle(server)) {
    claimed.delete(server);
    socket.close();
    throw new ListenerError('ERR_SERVER_ALREADY_LISTEN', 'server.listen() was called while listen(server) was opening its socket');
  }
  const listener = start(server, socket, signal, drain);
  server.emit('listening');
  return listener;
}

/**
 * Takes over a server that already called `server.listen()`: its socket is
 * duplicated, Node's handle closed, and the queue kept — nothing queued is
 * lost. From then on the returned listener accepts for the server.
 */
export function adopt(server: net.Server, options: AdoptOptions = {}): Listener<net.Socket> {
  validateServer(server);
  validateObject('options', options);
  const signal = validateSignal(options.signal);
  const drain = validateDrainOptions(options);
  signal?.throwIfAborted();
  const fd = listeningFd(server);
  if (fd === undefined) {
    throw new ListenerError(
      'ERR_SERVER_NOT_LISTENING',
      'adopt(server) needs a server listening on a TCP port; use listen(server, options) otherwise',
    );
  }
  claim(server, true);
  let socket: ListenSocket;
  try {
    socket = ListenSocket.adopt(fd);
  } catch (error) {
    claimed.delete(server);
    throw error;
  }
  dropNodeHandle(server);
  return start(server, socket, signal, drain);
}
