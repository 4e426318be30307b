// Child processes: the built package they load, a bounded run to
// completion, the verdict a child prints last, and the lines a child prints
// as they arrive.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { HANG_SCALE, when, type What } from './wait.js';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const distEntry = path.join(repoRoot, 'dist', 'index.js');

/** Tests that load the package as a consumer does need the compiled dist/. */
export function requireDist(): string {
  if (!fs.existsSync(distEntry)) {
    throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" (npm test does it in pretest)`);
  }
  return distEntry;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

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

/**
 * The lines a child prints on `stream`, each parsed by `parse` and kept in
 * order as it arrives (emitted as 'line' too). The waits are event-driven and
 * bounded.
 */
export class Lines<T = string> extends EventEmitter {
  readonly items: T[] = [];
  #taken = 0;

  constructor(stream: NodeJS.ReadableStream, parse: (line: string) => T = (line) => line as T) {
    super();
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const item = parse(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
        this.items.push(item);
        this.emit('line', item);
      }
    });
  }

  /** Resolves once `check` holds on the lines so far. */
  until(check: (items: T[]) => boolean, what: What): Promise<void> {
    return when(this, ['line'], () => check(this.items), what);
  }

  /** The first line that matches, once it has arrived. */
  async find(match: (item: T) => boolean, what: What): Promise<T> {
    await this.until((items) => items.some(match), what);
    return this.items.find(match)!;
  }

  /** The next line no call to next() has taken yet, once it has arrived. */
  async next(what: What): Promise<T> {
    const index = this.#taken++;
    await this.until((items) => items.length > index, what);
    return this.items[index]!;
  }
}

/**
 * A child that prints one JSON event per line (`{ event, ...fields }`): its
 * events as they arrive, its stderr, and its exit, bounded.
 */
export class EventChild<E extends { event: string }> {
  readonly process: ChildProcess;
  readonly events: Lines<E>;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** `child` was spawned with stdout and stderr piped. */
  constructor(child: ChildProcess) {
    this.process = child;
    this.events = new Lines(child.stdout!, (line) => JSON.parse(line) as E);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    // 'close', not 'exit': by then every line it printed has been read.
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  }

  /** The first event matching, once it has arrived (bounded). */
  next(match: (event: E) => boolean, what: string): Promise<E> {
    return this.events.find(match, () => `the child's ${what} (events: ${JSON.stringify(this.events.items)}, stderr: ${this.stderr})`);
  }

  /** The first event of that kind, once it has arrived (bounded). */
  first(kind: E['event']): Promise<E> {
    return this.next((event) => event.event === kind, `'${kind}'`);
  }

  of(kind: E['event']): E[] {
    return this.events.items.filter((event) => event.event === kind);
  }

  /** The exit, bounded: a child left alive is killed, and the test sees signal SIGKILL. */
  async exit(boundMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const bound = setTimeout(() => this.process.kill('SIGKILL'), boundMs * HANG_SCALE);
    try {
      return await this.exited;
    } finally {
      clearTimeout(bound);
    }
  }
}
