import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { invalidArgValue } from './errors.js';
import type { NativeBinding, NativeHandle, NativeSystemError } from './native.js';
import { validateBoolean, validateInteger, validateString } from './validate.js';

// sun_path holds 108 bytes: a path and its terminating NUL, or an abstract
// name's leading NUL and the name.
const SUN_PATH_BYTES = 108;
const MAX_MODE = 0o777;

/** The options of a Unix-domain listener, validated. */
export interface UnixOptions {
  path: string;
  /** Permission bits of the socket file, or undefined for the umask's. */
  mode: number | undefined;
  replace: boolean;
}

// Node 20 binds and connects an abstract name padded with NULs to the whole
// of sun_path (as HAProxy's abns@ does); Node 22 and later use the name's
// own length (uv_pipe_bind2/uv_pipe_connect2, as ss prints it). The kernel
// compares the whole address, so the socket is bound the way the Node
// running here binds and connects: `net.connect(name)` reaches it.
const PADS_ABSTRACT_NAMES = Number(process.versions.node.split('.')[0]) < 22;

/** The name handed to bind(2) for `path`: an abstract name as this Node encodes it. */
function bindName(path: string): string {
  return isAbstract(path) && PADS_ABSTRACT_NAMES ? path.padEnd(SUN_PATH_BYTES - (Buffer.byteLength(path) - path.length), '\0') : path;
}

/** Whether `path` names the abstract namespace (a leading NUL, as Node spells it). */
export function isAbstract(path: string): boolean {
  return path.startsWith('\0');
}

/** `path` as ss and systemd print it: an abstract name as `@name`. */
export function printable(path: string): string {
  return isAbstract(path) ? `@${path.slice(1)}` : path;
}

export function validateUnixOptions(options: { path?: unknown; mode?: unknown; replace?: unknown }): UnixOptions {
  const path = validateString('options.path', options.path);
  const abstract = isAbstract(path);
  const bytes = Buffer.byteLength(path);
  if (path.length === 0 || path === '\0') {
    throw invalidArgValue('options.path', path, 'must be a path, or a NUL and an abstract name');
  }
  if (!abstract && path.includes('\0')) throw invalidArgValue('options.path', path, 'must not contain a NUL after its first byte');
  if (bytes > (abstract ? SUN_PATH_BYTES : SUN_PATH_BYTES - 1)) {
    throw invalidArgValue('options.path', path, `must fit sun_path: at most ${SUN_PATH_BYTES - 1} bytes (${SUN_PATH_BYTES} for an abstract name), not ${bytes}`);
  }
  const mode = options.mode === undefined ? undefined : validateInteger('options.mode', options.mode, 0, MAX_MODE);
  const replace = validateBoolean('options.replace', options.replace ?? false);
  if (abstract && mode !== undefined) throw invalidArgValue('options.mode', mode, 'cannot be used with an abstract name (there is no file)');
  if (abstract && replace) throw invalidArgValue('options.replace', replace, 'cannot be used with an abstract name (there is no file to rename)');
  return { path, mode, replace };
}

interface Identity {
  dev: bigint;
  ino: bigint;
}

function identityOf(path: string): Identity | undefined {
  try {
    const { dev, ino } = fs.lstatSync(path, { bigint: true });
    return { dev, ino };
  } catch {
    return undefined;
  }
}

function isSocketFile(path: string): boolean | undefined {
  try {
    return fs.lstatSync(path).isSocket();
  } catch {
    return undefined;
  }
}

/** An error shaped like the bind(2) failure Node reports: `code`, `errno`, `syscall`, `address`. */
function bindError(code: 'EADDRINUSE', path: string, why: string, cause?: unknown): NativeSystemError {
  const address = printable(path);
  return Object.assign(new Error(`bind ${code}: ${why} ${address}`, { cause }), {
    code,
    errno: -os.constants.errno[code],
    syscall: 'bind',
    address,
  });
}

/**
 * The socket file (or abstract name) a Unix-domain listener answers on.
 * The file is this listener's only while it is the same file — same device
 * and inode — as the one its socket was bound to: a successor that renamed
 * its own socket over the path owns it from then on.
 */
export class UnixPath {
  readonly path: string;
  #identity: Identity | undefined;

  constructor(path: string, identity: Identity | undefined) {
    this.path = path;
    this.#identity = identity;
  }

  get abstract(): boolean {
    return isAbstract(this.path);
  }

  /** Whether the file at the path is still the one this socket was bound to. */
  owned(): boolean {
    const now = identityOf(this.path);
    return this.#identity !== undefined && now !== undefined && now.dev === this.#identity.dev && now.ino === this.#identity.ino;
  }

  /**
   * Unlinks the file if it is still this socket's (new connects then get
   * ENOENT); a file another listener renamed over the path is left alone.
   * Once only. Returns whether it unlinked.
   */
  release(): boolean {
    const identity = this.#identity;
    if (identity === undefined) return false;
    const mine = this.owned();
    this.#identity = undefined;
    if (!mine) return false;
    // A successor may rename its socket over the path between the check and
    // an unlink by name, which would then remove the successor's file. The
    // file is moved aside first (rename is atomic) and judged there: ours is
    // unlinked, anything else goes back.
    const aside = `${this.path}.${crypto.randomBytes(4).toString('hex')}~`;
    try {
      fs.renameSync(this.path, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    const moved = identityOf(aside);
    if (moved !== undefined && moved.dev === identity.dev && moved.ino === identity.ino) {
      fs.unlinkSync(aside);
      return true;
    }
    fs.renameSync(aside, this.path);
    return false;
  }
}

/**
 * Opens a listening AF_UNIX socket for `options`. A path already bound by a
 * socket nobody listens on (a stale file: connect(2) is refused) is unlinked
 * and bound again; a live listener there, or a file that is not a socket, is
 * EADDRINUSE — unless `replace`, which binds a temporary name in the same
 * directory, listens, and rename(2)s it over the path, so that a client
 * connecting meanwhile reaches the old listener or the new one, never
 * nothing. A file that is not a socket is never unlinked or replaced.
 */
export function openUnix(binding: NativeBinding, options: UnixOptions, backlog: number): { handle: NativeHandle; unixPath: UnixPath } {
  const { path, mode, replace } = options;
  const nativeMode = mode ?? -1;
  if (isAbstract(path)) return { handle: binding.openUnix(bindName(path), backlog, nativeMode), unixPath: new UnixPath(path, undefined) };
  if (replace) return replaceAtomically(binding, path, backlog, nativeMode);
  try {
    return bound(binding.openUnix(path, backlog, nativeMode), path);
  } catch (error) {
    if ((error as NativeSystemError).code !== 'EADDRINUSE') throw error;
    if (!isStale(binding, path, error)) throw error;
  }
  // Stale: the socket file of a listener that is gone.
  return bound(binding.openUnix(path, backlog, nativeMode), path);
}

function bound(handle: NativeHandle, path: string): { handle: NativeHandle; unixPath: UnixPath } {
  return { handle, unixPath: new UnixPath(path, identityOf(path)) };
}

// After EADDRINUSE: whether the file at `path` is a socket nobody listens on,
// which is then unlinked. Throws what the caller should see otherwise.
function isStale(binding: NativeBinding, path: string, bindFailure: unknown): boolean {
  const before = identityOf(path);
  const socket = isSocketFile(path);
  // Gone meanwhile: bind again.
  if (socket === undefined || before === undefined) return true;
  if (!socket) throw bindError('EADDRINUSE', path, 'the path exists and is not a socket (never unlinked):', bindFailure);
  let fd: number;
  try {
    // One attempt that does not wait: a full backlog (EAGAIN, reported as
    // ETIMEDOUT) is a live listener too.
    fd = binding.unixConnect(path, 0);
  } catch (error) {
    const code = (error as NativeSystemError).code;
    if (code === 'ENOENT') return true;
    if (code === 'ETIMEDOUT') {
      throw bindError('EADDRINUSE', path, 'a listener is serving, its queue full (options.replace takes the path over):', bindFailure);
    }
    if (code !== 'ECONNREFUSED') throw bindFailure;
    const now = identityOf(path);
    // Replaced meanwhile by another socket file: that one is not ours to judge.
    if (now === undefined) return true;
    if (now.dev !== before.dev || now.ino !== before.ino) throw bindFailure;
    fs.unlinkSync(path);
    return true;
  }
  fs.closeSync(fd);
  throw bindError('EADDRINUSE', path, 'a listener is serving (options.replace takes the path over):', bindFailure);
}

// A temporary name beside `path`: the rename stays within one filesystem.
function temporaryName(path: string): string {
  const dir = nodePath.dirname(path);
  const suffix = crypto.randomBytes(4).toString('hex');
  const beside = nodePath.join(dir, `.${nodePath.basename(path)}.${suffix}`);
  const shortest = nodePath.join(dir, `.${suffix}`);
  for (const name of [beside, shortest]) if (Buffer.byteLength(name) < SUN_PATH_BYTES) return name;
  throw invalidArgValue('options.path', path, `is too long for options.replace: its temporary name needs ${Buffer.byteLength(shortest) + 1} bytes of sun_path (${SUN_PATH_BYTES})`);
}

function replaceAtomically(binding: NativeBinding, path: string, backlog: number, mode: number): { handle: NativeHandle; unixPath: UnixPath } {
  if (isSocketFile(path) === false) {
    throw bindError('EADDRINUSE', path, 'the path exists and is not a socket (never replaced):');
  }
  const temporary = temporaryName(path);
  const handle = binding.openUnix(temporary, backlog, mode);
  try {
    const identity = identityOf(temporary);
    // The old file, if any, is replaced in one step: a connect resolves the
    // path to the old socket or to this one.
    fs.renameSync(temporary, path);
    return { handle, unixPath: new UnixPath(path, identity) };
  } catch (error) {
    handle.close();
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}
