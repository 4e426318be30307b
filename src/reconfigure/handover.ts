import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { guarded } from '../core/callout.js';
import { channels } from '../core/diagnostics.js';
import { ListenerError, invalidArgValue } from '../core/errors.js';
import { loadBinding, type NativeAddress, type NativeBinding } from '../core/native.js';
import { socketFd } from '../core/node-internals.js';
import { validateInteger, validateObject, validateString } from '../core/validate.js';
import type { ServerListener } from '../server/server-listener.js';

/** Options for a handover: `listen(server, { handover })`. */
export interface HandoverOptions {
  /**
   * The Unix control socket. A process serving it hands its listening
   * sockets over; otherwise this process binds fresh and serves it. Its
   * directory must be owned by this process's user.
   */
  path: string;
  /** Matches this listener with the predecessor's of the same name (http on :80, https on :443). @default 'default' */
  name?: string;
  /** Milliseconds each step of the control protocol may take. @default 5000 */
  timeout?: number;
}

/** What a predecessor's listener emits when it retires for a successor. */
export interface HandoverEvent {
  name: string;
  /** The successor process. */
  pid: number;
  uid: number;
}

const PROTOCOL_VERSION = 1;
const DEFAULT_TIMEOUT_MS = 5000;
const MAX_LINE_BYTES = 64 * 1024;
// sockaddr_un.sun_path holds 108 bytes with its terminating NUL.
const MAX_PATH_BYTES = 107;

interface Offer {
  v: number;
  sockets: { name: string; address: NativeAddress }[];
}

export function validateHandover(value: unknown): Required<HandoverOptions> {
  const options = typeof value === 'string' ? { path: value } : validateObject('options.handover', value);
  const socketPath = validateString('options.handover.path', options.path);
  if (!path.isAbsolute(socketPath)) {
    throw invalidArgValue('options.handover.path', socketPath, 'must be an absolute path');
  }
  // The temporary name (path.<pid>.<n>) must fit too.
  if (Buffer.byteLength(socketPath) + 24 > MAX_PATH_BYTES) {
    throw invalidArgValue('options.handover.path', socketPath, `must be at most ${MAX_PATH_BYTES - 24} bytes`);
  }
  const name = options.name === undefined ? 'default' : validateString('options.handover.name', options.name);
  if (name.length === 0 || name.length > 200) throw invalidArgValue('options.handover.name', name, 'must be 1 to 200 characters');
  const timeout = validateInteger('options.handover.timeout', options.timeout ?? DEFAULT_TIMEOUT_MS, 1, 2 ** 31 - 1);
  return { path: socketPath, name, timeout };
}

function handoverError(message: string, cause?: unknown): ListenerError {
  return new ListenerError('ERR_HANDOVER_FAILED', message, { cause });
}

function isNoPredecessor(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** Reads JSON lines from a socket, each bounded in size. */
function onLines(socket: net.Socket, onLine: (message: unknown) => void, onBad: () => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > MAX_LINE_BYTES) {
      onBad();
      return;
    }
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        onBad();
        return;
      }
      onLine(message);
    }
  });
}

const line = (message: unknown): string => `${JSON.stringify(message)}\n`;

/**
 * One control socket path in this process: the sockets a predecessor handed
 * over on it, and the listeners this process hands to its successor.
 *
 * Protocol (JSON lines on the AF_UNIX stream socket): the successor sends
 * `{v, op: 'handover'}`; the predecessor answers `{v, sockets: [{name,
 * address}]}` with the listening fds as SCM_RIGHTS, in that order. The
 * successor starts accepting on each socket it takes and sends `{ready:
 * name}`; the predecessor retires that listener (stops accepting, drains its
 * own connections, closes its fd — the socket and its queue live on in the
 * successor) and sends `{closed: name}` once its fd is closed. A successor
 * that disconnects before `ready` changed nothing; one that disconnects after
 * `ready`, while the predecessor still holds the socket, makes it accept again.
 */
export class HandoverPoint {
  static readonly #points = new Map<string, HandoverPoint>();

  /** The point for `socketPath` in this process (one per path). */
  static for(socketPath: string, binding: NativeBinding = loadBinding()): HandoverPoint {
    let point = HandoverPoint.#points.get(socketPath);
    if (point === undefined) {
      point = new HandoverPoint(socketPath, binding);
      HandoverPoint.#points.set(socketPath, point);
    }
    return point;
  }

  readonly path: string;
  readonly #binding: NativeBinding;
  // The predecessor: looked for once, on the first listen() of this path.
  #looked: Promise<void> | undefined;
  #control: net.Socket | undefined;
  readonly #offered = new Map<string, { fd: number; address: NativeAddress }>();
  // Listeners on a socket the predecessor still holds, by name.
  readonly #sharedWithPredecessor = new Map<string, ServerListener>();
  readonly #serving = new Map<string, ServerListener>();
  #server: net.Server | undefined;
  #inode: number | undefined;
  #session: net.Socket | undefined;
  #timeout = DEFAULT_TIMEOUT_MS;

  private constructor(socketPath: string, binding: NativeBinding) {
    this.path = socketPath;
    this.#binding = binding;
  }

  /**
   * The listening socket the predecessor handed over under `name`, as a
   * CLOEXEC fd the caller owns, or undefined when there is no predecessor
   * (no control socket, a stale file, a refusal) or it has no such name.
   */
  async receive(name: string, timeout: number): Promise<{ fd: number; address: NativeAddress } | undefined> {
    this.#timeout = timeout;
    this.#looked ??= this.#lookForPredecessor();
    await this.#looked;
    const offered = this.#offered.get(name);
    this.#offered.delete(name);
    return offered;
  }

  /**
   * A socket handed over under `name` that this listen() cannot use (another
   * address): closed here, and left to the predecessor.
   */
  decline(fd: number): void {
    fs.closeSync(fd);
    this.#startServing();
  }

  /** The listener now accepts on the socket `name` was handed over as: the predecessor retires its own. */
  accepting(name: string, listener: ServerListener): void {
    const control = this.#control;
    if (control === undefined || control.destroyed) return;
    listener.share();
    this.#sharedWithPredecessor.set(name, listener);
    listener.once('close', () => this.#sharedWithPredecessor.delete(name));
    control.write(line({ ready: name }));
  }

  /** Serves `listener` under `name` to this process's successor. */
  serve(name: string, listener: ServerListener): void {
    this.#serving.set(name, listener);
    listener.once('close', () => {
      if (this.#serving.get(name) === listener) this.#serving.delete(name);
      if (this.#serving.size === 0) this.#stopServing();
    });
    this.#startServing();
  }

  async #lookForPredecessor(): Promise<void> {
    this.#checkDirectory();
    let fd: number;
    try {
      fd = this.#binding.unixConnect(this.path, this.#timeout);
    } catch (error) {
      if (isNoPredecessor(error)) return;
      throw handoverError(`Cannot reach the process serving ${this.path}`, error);
    }
    let received: { data: Buffer; fds: number[]; eof: boolean };
    try {
      this.#binding.sendWithFds(fd, Buffer.from(line({ v: PROTOCOL_VERSION, op: 'handover' })), []);
      received = this.#binding.receiveWithFds(fd, this.#timeout, MAX_LINE_BYTES);
    } catch (error) {
      fs.closeSync(fd);
      throw handoverError(`The process serving ${this.path} did not hand over its sockets`, error);
    }
    const closeAll = (): void => {
      for (const received_fd of received.fds) fs.closeSync(received_fd);
      fs.closeSync(fd);
    };
    let offer: Offer;
    try {
      const text = received.data.toString('utf8');
      offer = JSON.parse(text.slice(0, text.indexOf('\n'))) as Offer;
    } catch (error) {
      closeAll();
      throw handoverError(`The process serving ${this.path} answered garbage`, error);
    }
    if ((offer as { error?: string }).error !== undefined) {
      closeAll();
      throw handoverError(`The process serving ${this.path} refused: ${(offer as { error?: string }).error}`);
    }
    if (offer.v !== PROTOCOL_VERSION || !Array.isArray(offer.sockets) || offer.sockets.length !== received.fds.length) {
      closeAll();
      throw handoverError(`The process serving ${this.path} sent an offer this version cannot read`);
    }
    offer.sockets.forEach((socket, i) => this.#offered.set(socket.name, { fd: received.fds[i]!, address: socket.address }));
    // From here the connection is Node's: ready and closed lines, no more fds.
    const control = new net.Socket({ fd, readable: true, writable: true });
    this.#control = control;
    // Neither side's control connection keeps its process alive.
    control.unref();
    control.on('error', () => {});
    onLines(
      control,
      (message) => {
        const closed = (message as { closed?: unknown }).closed;
        if (typeof closed !== 'string') return;
        // The predecessor closed its fd: the socket is this process's alone.
        const listener = this.#sharedWithPredecessor.get(closed);
        this.#sharedWithPredecessor.delete(closed);
        if (listener !== undefined && listener.state !== 'closed') listener.share(false);
      },
      () => control.destroy(),
    );
    control.on('close', () => {
      this.#control = undefined;
    });
    // Names this process does not take within the timeout stay the predecessor's.
    setTimeout(() => {
      for (const offered of this.#offered.values()) fs.closeSync(offered.fd);
      this.#offered.clear();
      if (this.#sharedWithPredecessor.size === 0) control.end();
      this.#startServing();
    }, this.#timeout).unref();
  }

  #checkDirectory(): void {
    const directory = path.dirname(this.path);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(directory);
    } catch (error) {
      throw invalidArgValue('options.handover.path', this.path, 'must be in an existing directory', error);
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw invalidArgValue('options.handover.path', this.path, `must be in a directory owned by this user (uid ${uid})`);
    }
  }

  // Bind a temporary name and rename(2) it over the path: there is never a
  // moment with no control socket. (libuv unlinks the name it bound when the
  // server closes: after the rename that is the temporary one, already gone.)
  #startServing(): void {
    if (this.#server !== undefined || this.#offered.size > 0 || this.#serving.size === 0) return;
    const temporary = `${this.path}.${process.pid}.${Math.floor(Math.random() * 1e9)}`;
    const server = net.createServer((socket) => this.#onSuccessor(socket));
    this.#server = server;
    server.on('error', (error) => this.#report(error));
    const mask = process.umask(0o077);
    try {
      server.listen(temporary);
    } finally {
      process.umask(mask);
    }
    server.unref();
    server.once('listening', () => {
      try {
        fs.chmodSync(temporary, 0o600);
        this.#inode = fs.statSync(temporary).ino;
        fs.renameSync(temporary, this.path);
      } catch (error) {
        this.#report(error as Error);
      }
    });
  }

  #stopServing(): void {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    server.close();
    // Leave no stale file, unless a successor's socket took the path.
    try {
      if (fs.statSync(this.path).ino === this.#inode) fs.unlinkSync(this.path);
    } catch {
      // Already gone.
    }
  }

  #onSuccessor(socket: net.Socket): void {
    socket.unref();
    socket.on('error', () => {});
    const fd = socketFd(socket);
    let peer: { pid: number; uid: number };
    try {
      if (fd === undefined) throw new Error('no fd');
      peer = this.#binding.peerCredentials(fd);
    } catch {
      socket.destroy();
      return;
    }
    const uid = process.getuid?.() ?? 0;
    if (peer.uid !== uid && peer.uid !== 0) {
      socket.end(line({ error: 'permission denied' }));
      return;
    }
    if (this.#session !== undefined) {
      socket.end(line({ error: 'busy: a handover is in progress' }));
      return;
    }
    this.#session = socket;
    // Each step is bounded: a peer that hangs gets nothing.
    let timer = setTimeout(() => socket.destroy(), this.#timeout);
    const offered = new Map<string, ServerListener>();
    const readied = new Set<ServerListener>();
    onLines(
      socket,
      (message) => {
        if (offered.size === 0) {
          if ((message as { v?: unknown; op?: unknown }).op !== 'handover' || (message as { v?: unknown }).v !== PROTOCOL_VERSION) {
            socket.destroy();
            return;
          }
          clearTimeout(timer);
          timer = setTimeout(() => {
            if (readied.size === 0) socket.destroy();
          }, this.#timeout);
          this.#offer(socket, fd!, offered);
          return;
        }
        const name = (message as { ready?: unknown }).ready;
        const listener = typeof name === 'string' ? offered.get(name) : undefined;
        if (listener === undefined || readied.has(listener)) return;
        readied.add(listener);
        clearTimeout(timer);
        this.#retireFor(socket, name as string, listener, peer);
      },
      () => socket.destroy(),
    );
    socket.on('close', () => {
      clearTimeout(timer);
      if (this.#session === socket) this.#session = undefined;
      // A successor gone after ready, while we still hold the socket: accept again.
      for (const listener of readied) {
        if (listener.state === 'draining') {
          guarded(() => {
            listener.resume();
            listener.share(false);
          });
        }
      }
    });
  }

  #offer(socket: net.Socket, fd: number, offered: Map<string, ServerListener>): void {
    const sockets: Offer['sockets'] = [];
    const fds: number[] = [];
    for (const [name, listener] of this.#serving) {
      if (listener.state !== 'accepting') continue;
      offered.set(name, listener);
      sockets.push({ name, address: listener.address() });
      fds.push(listener.fd);
    }
    try {
      this.#binding.sendWithFds(fd, Buffer.from(line({ v: PROTOCOL_VERSION, sockets })), fds);
    } catch {
      offered.clear();
      socket.destroy();
    }
  }

  #retireFor(socket: net.Socket, name: string, listener: ServerListener, peer: { pid: number; uid: number }): void {
    listener.share();
    const event: HandoverEvent = { name, pid: peer.pid, uid: peer.uid };
    guarded(() => listener.emit('handover', event));
    if (channels.handover.hasSubscribers) channels.handover.publish({ listener, ...event });
    listener.once('close', () => {
      if (!socket.destroyed) socket.write(line({ closed: name }));
      if (this.#serving.size === 0) socket.end();
    });
    listener.close().catch(() => {
      // Aborted by resume(): the successor went away.
    });
  }

  #report(error: Error): void {
    process.emitWarning(error);
  }
}
