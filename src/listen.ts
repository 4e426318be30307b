import net from 'node:net';
import { ListenerError } from './core/errors.js';
import { ListenSocket, type OpenOptions } from './core/listen-socket.js';
import { listeningFd } from './core/node-internals.js';
import { validateObject } from './core/validate.js';
import type { DrainOptions } from './server/feed.js';
import { ServerListener } from './server/server-listener.js';
import { ServerClaim } from './server/takeover.js';
import { validateDrainOptions, validateServer, validateSignal } from './server/validate.js';

/** Options for {@link listen}. */
export interface ListenOptions extends OpenOptions, DrainOptions {
  /** Adopt this listening fd (dup'd; the caller keeps the original) instead of opening a socket. */
  fd?: number;
  /** Aborting it closes the listener (two-phase, default timeouts). */
  signal?: AbortSignal;
}

/** Options for {@link adopt}. */
export interface AdoptOptions extends DrainOptions {
  /** Aborting it closes the listener (two-phase, default timeouts). */
  signal?: AbortSignal;
}

/**
 * Opens a listening socket owned by the addon and feeds `server` from it, in
 * place of `server.listen()`. The server emits `'listening'` and behaves as if
 * it had listened; `listener.close()` (or `server.close()`) closes in two
 * phases without resetting any client whose handshake completed.
 */
export async function listen(server: net.Server, options: ListenOptions = {}): Promise<ServerListener> {
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
  let listener: ServerListener;
  try {
    listener = new ServerListener(socket, claim, drain, signal);
  } catch (error) {
    socket.close();
    throw error;
  }
  listener.announce();
  return listener;
}

/**
 * Takes over a server that already called `server.listen()`: its socket is
 * duplicated, Node's handle closed, and the queue kept — nothing queued is
 * lost. From then on the returned listener accepts for the server.
 */
export function adopt(server: net.Server, options: AdoptOptions = {}): ServerListener {
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
  try {
    return new ServerListener(socket, claim, drain, signal);
  } catch (error) {
    socket.close();
    throw error;
  }
}
