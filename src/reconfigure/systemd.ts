import fs from 'node:fs';
import { ListenerError, invalidArgType, invalidArgValue } from '../core/errors.js';
import { loadBinding, type NativeBinding } from '../core/native.js';

// sd_listen_fds(3): the passed sockets start at fd 3.
const SD_LISTEN_FDS_START = 3;

interface Passed {
  fd: number;
  name: string;
}

let passed: Passed[] | undefined;
const taken = new Set<number>();

/**
 * The sockets systemd passed this process (socket activation): `LISTEN_FDS`
 * fds from 3, named by `LISTEN_FDNAMES`, for the process `LISTEN_PID`. Read
 * once; the variables are then removed from the environment, as
 * `sd_listen_fds(1)` does, so that child processes do not take them for
 * theirs. A `LISTEN_PID` that is not this process means the variables were
 * inherited: they are ignored with a warning.
 */
function passedSockets(): Passed[] {
  if (passed !== undefined) return passed;
  passed = [];
  const { LISTEN_PID: pid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = process.env;
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  if (count === undefined) return passed;
  if (pid !== String(process.pid)) {
    process.emitWarning(
      `LISTEN_FDS is set for process ${pid ?? '(no LISTEN_PID)'}, not for this one (${process.pid}): the sockets are not adopted`,
      { code: 'GRACEFUL_LISTENER_SYSTEMD_PID' },
    );
    return passed;
  }
  const n = Number(count);
  if (!Number.isInteger(n) || n < 0) {
    process.emitWarning(`LISTEN_FDS=${count} is not a count of sockets: none adopted`, { code: 'GRACEFUL_LISTENER_SYSTEMD_FDS' });
    return passed;
  }
  const fdNames = names === undefined ? [] : names.split(':');
  for (let i = 0; i < n; i++) passed.push({ fd: SD_LISTEN_FDS_START + i, name: fdNames[i] ?? 'unknown' });
  return passed;
}

/** Which passed socket `listen(server, { systemd })` takes: the first, or the one of that name. */
export function validateSystemd(value: unknown): true | string {
  if (value === true) return true;
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'string') throw invalidArgValue('options.systemd', value, 'must be true or a socket name');
  throw invalidArgType('options.systemd', 'true or a socket name (string)', value);
}

/**
 * Takes a socket systemd passed: the first one not taken yet (`true`), or
 * the one named `name` (`FileDescriptorName=` in the .socket unit). Returns
 * its fd, which the caller adopts (a CLOEXEC duplicate) and then closes with
 * {@link releasePassed}; undefined when systemd passed none for this process.
 */
export function takePassed(which: true | string): number | undefined {
  const sockets = passedSockets();
  if (sockets.length === 0) return undefined;
  const found = sockets.find((socket) => !taken.has(socket.fd) && (which === true || socket.name === which));
  if (found === undefined) {
    const names = sockets.map((socket) => socket.name).join(', ');
    throw new ListenerError(
      'ERR_SYSTEMD_SOCKET',
      which === true
        ? `Every socket systemd passed is taken already (${names})`
        : `systemd passed no socket named '${which}' (passed: ${names})`,
    );
  }
  taken.add(found.fd);
  return found.fd;
}

/**
 * Closes the fd systemd passed once the listener holds its own duplicate:
 * the socket lives on in systemd, which holds it too, and a child process
 * must not inherit it (the passed fds are not close-on-exec).
 */
export function releasePassed(fd: number): void {
  fs.closeSync(fd);
}

/**
 * Sends `state` (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`, several
 * separated by newlines) to the service manager, as sd_notify(3): one
 * datagram on the AF_UNIX socket named by `NOTIFY_SOCKET` (`@` is the
 * abstract namespace). Returns whether one was sent: false when the process
 * is not run by systemd with `Type=notify` (no `NOTIFY_SOCKET`).
 */
export function sdNotify(state: string, binding: NativeBinding = loadBinding()): boolean {
  if (typeof state !== 'string') throw invalidArgType('state', 'of type string', state);
  const socket = process.env.NOTIFY_SOCKET;
  if (socket === undefined || socket.length === 0) return false;
  binding.notify(socket, state);
  return true;
}

let stoppingSent = false;

/**
 * `STOPPING=1`, sent at most once per process: the first drain of a
 * listener from `listen(server, { systemd })` and the first signal of
 * `closeOnSignals()` both announce the same stop. Returns whether it was
 * sent now.
 */
export function notifyStopping(binding: NativeBinding = loadBinding()): boolean {
  if (stoppingSent) return false;
  const sent = sdNotify('STOPPING=1', binding);
  if (sent) stoppingSent = true;
  return sent;
}
