import net from 'node:net';
import { ListenerError, invalidArgType } from './core/errors.js';
import { ListenSocket, type OpenOptions } from './core/listen-socket.js';
import { listeningFd } from './core/node-internals.js';
import { validateInteger, validateObject } from './core/validate.js';

import { Listener } from './listener.js';
import { ServerFeed, type DrainOptions } from './server/feed.js';
import { ServerClaim, ServerTakeover } from './server/takeover.js';

const MAX_MS = 2 ** 31 - 1;

/** Options for {@link listen}. */
export interface ListenOptions extends OpenOptions, DrainOptions {
  /** Adopt this listening fd (dup'd; the caller keeps the original) instead of opening a socket. */
  fd?: number;
  /** Aborting it closes the listener (two-phase, default timeouts). */
  signal?: AbortSignal;
}

function validateServer(server: unknown): asserts server is net.Server {
  if (!(server instanceof net.Server)) {
    throw invalidArgType('server', 'an instance of net.Server (net, tls, http, https or http2)', server);
  }
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

// In dependency order: the listener owns the socket, the takeover makes the
// server believe it listened and routes its close to the listener, the feed
// is the connection sink the listener serves.
function start(
  claim: ServerClaim,
  socket: ListenSocket,
  signal: AbortSignal | undefined,
  drain: DrainOptions,
): { listener: Listener<net.Socket>; takeover: ServerTakeover } {
  const listener = new Listener<net.Socket>(socket);
  let takeover: ServerTakeover;
  try {
    takeover = new ServerTakeover(claim, listener, signal);
  } catch (error) {
    socket.close();
    throw error;
  }
  listener.serve(new ServerFeed(claim.server, takeover, drain));
  return { listener, takeover };
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
  const claim = new ServerClaim(server, false);
  let socket: ListenSocket;
  try {
    socket = options.fd !== undefined ? ListenSocket.adopt(options.fd) : await ListenSocket.open(options);
  } catch (error) {
    claim.release();
    throw error;
  }
  if (signal?.aborted) {
    claim.release();
    socket.close();
    signal.throwIfAborted();
  }
  const { listener, takeover } = start(claim, socket, signal, drain);
  takeover.announce();
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
  const claim = new ServerClaim(server, true);
  let socket: ListenSocket;
  try {
    socket = ListenSocket.adopt(fd);
  } catch (error) {
    claim.release();
    throw error;
  }
  return start(claim, socket, signal, drain).listener;
}
