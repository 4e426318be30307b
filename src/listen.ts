import fs from 'node:fs';
import net from 'node:net';
import { ListenerError, invalidArgValue } from './core/errors.js';
import { ListenSocket, type OpenOptions } from './core/listen-socket.js';
import type { NativeAddress } from './core/native.js';
import { listeningFd } from './core/node-internals.js';
import { HandoverPoint, validateHandover, type HandoverOptions } from './reconfigure/handover.js';
import { notifyStopping, releasePassed, sdNotify, takePassed, validateSystemd } from './reconfigure/systemd.js';
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
  /**
   * Restart without a refused or reset client: the process serving this Unix
   * control socket hands its listening socket over (SCM_RIGHTS) and retires;
   * without one, this listen() binds fresh. Either way this process then
   * serves the path to its own successor. A path, or `{ path, name, timeout }`.
   */
  handover?: string | HandoverOptions;
  /**
   * Socket activation: adopt a socket systemd passed (`LISTEN_FDS`): `true`
   * for the first one not taken yet, or its `FileDescriptorName=`. The socket
   * stays systemd's: the listener's close retires (see `CloseReport.mode`).
   * `READY=1` is sent to `NOTIFY_SOCKET` once the server is fed, `STOPPING=1`
   * when the listener starts draining. Without systemd's variables (or for
   * another `LISTEN_PID`, with a warning) it binds as `host`/`port` say.
   */
  systemd?: true | string;
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
  const handover = options.handover === undefined ? undefined : validateHandover(options.handover);
  const systemd = options.systemd === undefined ? undefined : validateSystemd(options.systemd);
  if (handover !== undefined && options.fd !== undefined) {
    throw invalidArgValue('options.handover', handover.path, 'cannot be used with options.fd');
  }
  if (systemd !== undefined && (options.fd !== undefined || handover !== undefined)) {
    throw invalidArgValue('options.systemd', systemd, 'cannot be used with options.fd or options.handover');
  }
  if (options.path !== undefined) {
    // A Unix-domain listener is opened here; a restart replaces its path (options.replace).
    const other = options.fd !== undefined ? 'fd' : handover !== undefined ? 'handover' : systemd !== undefined ? 'systemd' : undefined;
    if (other !== undefined) {
      throw invalidArgValue(`options.${other}`, options[other], 'cannot be used with options.path (use options.replace to restart on a path)');
    }
  }
  signal?.throwIfAborted();
  const claim = new ServerClaim(server, false);
  const point = handover === undefined ? undefined : HandoverPoint.for(handover.path);
  let socket: ListenSocket;
  let handedOver = false;
  let fromSystemd = false;
  try {
    const offered = point === undefined ? undefined : await point.receive(handover!.name, handover!.timeout);
    const passedFd = systemd === undefined ? undefined : takePassed(systemd);
    if (offered !== undefined) {
      socket = adoptHandedOver(point!, offered, handover!.name, options);
      handedOver = true;
    } else if (passedFd !== undefined) {
      try {
        socket = ListenSocket.adopt(passedFd);
      } finally {
        releasePassed(passedFd);
      }
      fromSystemd = true;
    } else {
      socket = options.fd !== undefined ? ListenSocket.adopt(options.fd) : await ListenSocket.open(options);
    }
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
  if (point !== undefined) {
    if (handedOver) point.accepting(handover!.name, listener);
    point.serve(handover!.name, listener);
  }
  if (fromSystemd) listener.share();
  listener.announce();
  if (systemd !== undefined) notifySystemd(listener);
  return listener;
}

// READY=1 now, STOPPING=1 when the listener starts draining; a failed
// notification is reported, never fatal.
function notifySystemd(listener: ServerListener): void {
  const send = (notify: () => unknown): void => {
    try {
      notify();
    } catch (error) {
      process.emitWarning(error as Error);
    }
  };
  send(() => sdNotify('READY=1'));
  // Once per process, whichever listener (or closeOnSignals()) stops first.
  listener.on('draining', () => send(notifyStopping));
}

// The predecessor's socket, if it is the one this listen() asks for.
function adoptHandedOver(
  point: HandoverPoint,
  offered: { fd: number; address: NativeAddress },
  name: string,
  options: ListenOptions,
): ListenSocket {
  const { address, port } = offered.address;
  const wrongPort = options.port !== undefined && options.port !== 0 && options.port !== port;
  const wrongHost = options.host !== undefined && net.isIP(options.host) !== 0 && options.host !== address;
  if (wrongPort || wrongHost) {
    point.decline(offered.fd);
    throw new ListenerError(
      'ERR_HANDOVER_FAILED',
      `The socket handed over as '${name}' listens on ${address}:${port}, not on ${options.host ?? address}:${options.port ?? port}`,
    );
  }
  try {
    return ListenSocket.adopt(offered.fd);
  } finally {
    fs.closeSync(offered.fd);
  }
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
