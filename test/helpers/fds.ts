// This process's file descriptors, read from /proc/self: what each points
// to, its open-file flags, and the raw fds a ListenSocket delivers.
import fs from 'node:fs';
import type net from 'node:net';
import type { ListenSocket } from '../../src/index.js';
import type { Opened } from './opened.js';
import { waitFor } from './wait.js';

export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** What /proc/self/fd/<fd> points to, e.g. "socket:[12345]"; undefined if not open. */
export function fdTarget(fd: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** fd number → link target for every fd open in this process. */
export function openFds(): Map<number, string> {
  const result = new Map<number, string>();
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    const target = fdTarget(Number(entry));
    // The directory fd readdir itself used is gone by now.
    if (target !== undefined) result.set(Number(entry), target);
  }
  return result;
}

/** What every open fd points to, sorted (fd numbers may be reused). */
export function openFdTargets(): string[] {
  return [...openFds().values()].sort();
}

/** Whether any fd of this process points to `target`. */
export function anyFdPointsTo(target: string): boolean {
  for (const open of openFds().values()) if (open === target) return true;
  return false;
}

/** Waits (bounded) until the open fds point to exactly `before` again: sockets close asynchronously. */
export function fdsBackTo(before: string[], what: string, options?: { tries?: number; intervalMs?: number }): Promise<void> {
  return waitFor(
    () => `${what}: ${JSON.stringify({ before, after: openFdTargets() })}`,
    () => JSON.stringify(openFdTargets()) === JSON.stringify(before),
    options,
  );
}

/** The open-file flags (F_GETFL) of one of this process's fds, from /proc/self/fdinfo. */
export function fdFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  if (match === null) throw new Error(`no flags in fdinfo for ${fd}`);
  return parseInt(match[1]!, 8);
}

/** The OS fd of a socket or a listening server (test-only peek at `_handle.fd`). */
export function fdOf(handleOwner: net.Socket | net.Server): number {
  const fd = (handleOwner as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd');
  return fd;
}

/** Arms the listener and collects delivered fds (owned by `opened`) until `count` arrived (bounded). */
export async function acceptExactly(
  listener: ListenSocket,
  opened: Opened,
  count: number,
): Promise<{ fds: number[]; batches: number[][] }> {
  const fds: number[] = [];
  const batches: number[][] = [];
  listener.arm((batch) => {
    batches.push(batch);
    for (const fd of batch) fds.push(opened.fd(fd));
  });
  await waitFor(() => `${count} accepted connections (have ${fds.length})`, () => fds.length >= count, { tries: 250 });
  return { fds, batches };
}
