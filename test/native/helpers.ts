// Shared by the loopback tests: bounded waiting, client and fd bookkeeping,
// /proc/self/fd inspection, child processes. Every wait here has a fixed
// number of tries; nothing asserts on elapsed time.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ListenSocket } from '../../src/index.js';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const distEntry = path.join(repoRoot, 'dist', 'index.js');

/** Tests that load the package as a consumer does need the compiled dist/. */
export function requireDist(): string {
  if (!fs.existsSync(distEntry)) {
    throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" (npm test does it in pretest)`);
  }
  return distEntry;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` up to `tries` times, `intervalMs` apart; throws with `what` if it never holds. */
export async function waitFor(
  what: string,
  check: () => boolean,
  { tries = 100, intervalMs = 20 }: { tries?: number; intervalMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (check()) return;
    await sleep(intervalMs);
  }
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

/** A client socket with everything that happened to it recorded. */
export interface Client {
  socket: net.Socket;
  connected: boolean;
  errors: Error[];
  closed: boolean;
  ended: boolean;
}

/**
 * Everything a test opens, closed in `dispose()` (call it from afterEach):
 * listeners, client sockets, raw fds and child processes.
 */
export class Resources {
  readonly #listeners: ListenSocket[] = [];
  readonly #sockets: net.Socket[] = [];
  readonly #fds = new Set<number>();
  readonly #children: ChildProcess[] = [];

  listener<T extends ListenSocket>(listener: T): T {
    this.#listeners.push(listener);
    return listener;
  }

  socket<T extends net.Socket>(socket: T): T {
    this.#sockets.push(socket);
    return socket;
  }

  /** A raw fd (an accepted connection) this test still owns. */
  fd(fd: number): number {
    this.#fds.add(fd);
    return fd;
  }

  /** The fd now belongs to something else (a net.Socket, or it was closed). */
  release(fd: number): void {
    this.#fds.delete(fd);
  }

  child<T extends ChildProcess>(child: T): T {
    this.#children.push(child);
    return child;
  }

  connect(port: number, host: string, greeting?: string): Client {
    const client: Client = {
      socket: this.socket(net.connect({ port, host })),
      connected: false,
      errors: [],
      closed: false,
      ended: false,
    };
    client.socket.on('connect', () => {
      client.connected = true;
      if (greeting !== undefined) client.socket.write(greeting);
    });
    client.socket.on('error', (error) => client.errors.push(error));
    client.socket.on('end', () => {
      client.ended = true;
    });
    client.socket.on('close', () => {
      client.closed = true;
    });
    return client;
  }

  /** Wraps an accepted fd in a net.Socket, which then owns it. */
  adoptFd(fd: number): net.Socket {
    this.release(fd);
    return this.socket(new net.Socket({ fd, readable: true, writable: true }));
  }

  dispose(): void {
    for (const child of this.#children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const socket of this.#sockets.splice(0)) socket.destroy();
    for (const fd of this.#fds) {
      try {
        fs.closeSync(fd);
      } catch {
        // Already closed by the test.
      }
    }
    this.#fds.clear();
    for (const listener of this.#listeners.splice(0)) listener.close();
  }
}

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

export const O_NONBLOCK = 0o4000;

/** The open-file flags (F_GETFL) of one of this process's fds, from /proc/self/fdinfo. */
export function fdFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  if (match === null) throw new Error(`no flags in fdinfo for ${fd}`);
  return parseInt(match[1]!, 8);
}

export function hasTarget(target: string): boolean {
  for (const open of openFds().values()) if (open === target) return true;
  return false;
}

/** Arms the listener and collects delivered fds until `count` arrived (bounded). */
export async function acceptExactly(
  listener: ListenSocket,
  resources: Resources,
  count: number,
): Promise<{ fds: number[]; batches: number[][] }> {
  const fds: number[] = [];
  const batches: number[][] = [];
  listener.arm((batch) => {
    batches.push(batch);
    for (const fd of batch) fds.push(resources.fd(fd));
  });
  await waitFor(`${count} accepted connections (have ${fds.length})`, () => fds.length >= count, {
    tries: 250,
    intervalMs: 20,
  });
  return { fds, batches };
}

/** Reads from each socket until `expected` bytes arrived; resolves with what each one sent. */
export function readEach(sockets: net.Socket[], expected: number): Promise<string[]> {
  return Promise.all(
    sockets.map(
      (socket) =>
        new Promise<string>((resolve, reject) => {
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => {
            text += chunk;
            if (text.length >= expected) resolve(text);
          });
          socket.on('error', reject);
          socket.on('close', () => reject(new Error(`socket closed after ${JSON.stringify(text)}`)));
        }),
    ),
  );
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// Under valgrind (test/valgrind/run.sh) every process runs many times slower:
// hang bounds are multiplied by GL_TEST_HANG_SCALE.
const HANG_SCALE = Math.max(1, Number(process.env.GL_TEST_HANG_SCALE ?? '1') || 1);

/** Runs a child to completion, killing it if it outlives `killAfterMs` (a hang bound, not a timing assertion). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; killAfterMs?: number; stdio?: (number | 'pipe' | 'ignore')[] } = {},
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), (options.killAfterMs ?? 20_000) * HANG_SCALE);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The last line of a child's stdout, parsed as JSON (the child's verdict). */
export function verdict<T>(result: ChildResult): T {
  const lines = result.stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(
      `child printed no verdict (code ${result.code}, signal ${result.signal})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
}
