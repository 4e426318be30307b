// One server process of a restart scenario: spawned from an argv (no shell),
// followed through the JSON lines it prints on stdout, stopped with a signal
// and reaped. Every wait is bounded; what outlives its bound is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { round } from './recorder.js';

/** A JSON line a server process printed, with the time it arrived (ms since the load began). */
export interface ServerEvent {
  event: string;
  atMs: number;
  [key: string]: unknown;
}

/** One server process of {@link runRestarts}, as it lived. Times are ms since the load began (negative: before it). */
export interface ServerProcessReport {
  /** 0 for the first process, n for the one restart n started. */
  index: number;
  pid: number;
  argv: string[];
  /** The port it printed in its `listening` line. */
  port: number | null;
  startedAtMs: number;
  listeningAtMs: number | null;
  /** When it was sent `stopSignal` (never, for a process that retired by itself after a handover). */
  signalledAtMs: number | null;
  exitedAtMs: number | null;
  exitCode: number | null;
  /** The signal that ended it, if one did. */
  signal: string | null;
  /** It outlived `exitTimeout` and was killed with SIGKILL. */
  killed: boolean;
  /** Every JSON line with an `event` it printed, `listening` included. */
  events: ServerEvent[];
  /** The last 4000 characters it wrote to stderr. */
  stderr: string;
}

const STDERR_TAIL = 4000;
// A line longer than this is not a protocol line: dropped unread.
const MAX_LINE = 1 << 20;

export class ServerProcess {
  readonly report: ServerProcessReport;
  readonly #child: ChildProcess;
  readonly #clock: () => number;
  readonly #exited: Promise<void>;
  readonly #listening: Promise<number>;
  #exitedYet = false;

  constructor(index: number, argv: readonly string[], spawnOptions: { cwd?: string; env?: NodeJS.ProcessEnv }, clock: () => number) {
    this.#clock = clock;
    const [file, ...args] = argv;
    const child = spawn(file!, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.report = {
      index,
      pid: child.pid ?? 0,
      argv: [...argv],
      port: null,
      startedAtMs: round(clock()),
      listeningAtMs: null,
      signalledAtMs: null,
      exitedAtMs: null,
      exitCode: null,
      signal: null,
      killed: false,
      events: [],
      stderr: '',
    };
    let resolveListening!: (port: number) => void;
    let rejectListening!: (error: Error) => void;
    this.#listening = new Promise((resolve, reject) => {
      resolveListening = resolve;
      rejectListening = reject;
    });
    this.#listening.catch(() => {});
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.report.stderr = (this.report.stderr + chunk).slice(-STDERR_TAIL);
    });
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const event = parseEvent(line);
        if (event === undefined) continue;
        const atMs = round(clock());
        this.report.events.push({ ...event, atMs });
        if (event.event === 'listening' && this.report.listeningAtMs === null) {
          const port = event.port;
          if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
            rejectListening(new Error(`server process ${index} printed a listening line without a valid port: ${line}`));
            continue;
          }
          this.report.port = port;
          this.report.listeningAtMs = atMs;
          resolveListening(port);
        } else if (event.event === 'error' && this.report.listeningAtMs === null) {
          rejectListening(new Error(`server process ${index} failed to listen: ${line}`));
        }
      }
      if (buffered.length > MAX_LINE) buffered = '';
    });
    this.#exited = new Promise((resolve) => {
      // Done once stdout is read to its end ('close'), so that no line is
      // lost; a grandchild holding the pipe open delays that 100 ms at most.
      const done = (): void => {
        rejectListening(
          new Error(
            `server process ${index} (${this.report.argv.join(' ')}) exited (${this.report.exitCode ?? this.report.signal}) ` +
              `before listening: ${this.report.stderr}`,
          ),
        );
        resolve();
      };
      const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.#exitedYet) return;
        this.#exitedYet = true;
        this.report.exitedAtMs = round(clock());
        this.report.exitCode = code;
        this.report.signal = signal;
        setTimeout(done, 100).unref();
      };
      child.once('exit', exited);
      child.once('close', (code, signal) => {
        exited(code, signal);
        done();
      });
      // spawn failed (ENOENT, EACCES): there is no process and no 'exit'.
      child.once('error', (error) => {
        this.report.stderr += String(error);
        if (child.pid === undefined) exited(null, null);
      });
    });
  }

  get alive(): boolean {
    return !this.#exitedYet;
  }

  get exited(): Promise<void> {
    return this.#exited;
  }

  /** Resolves with the port once the process printed its listening line; rejects if it exits, fails or takes longer than `timeoutMs`. */
  listening(timeoutMs: number): Promise<number> {
    return bounded(this.#listening, timeoutMs, () => new Error(`server process ${this.report.index} did not print a listening line within ${timeoutMs} ms`));
  }

  /** Sends `signal`, then waits for the exit as {@link awaitExit} does. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    if (this.alive) {
      this.report.signalledAtMs = round(this.#clock());
      this.#child.kill(signal);
    }
    return this.awaitExit(timeoutMs);
  }

  /** Waits up to `timeoutMs` for the process to exit, then kills it (SIGKILL) and waits for that. */
  async awaitExit(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const outcome = await Promise.race([this.#exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      this.kill();
      await this.#exited;
    }
  }

  /** Moves the times recorded so far `ms` earlier: onto a clock that started `ms` later. */
  shift(ms: number): void {
    const r = this.report;
    const move = (at: number | null): number | null => (at === null ? null : round(at - ms));
    r.startedAtMs = round(r.startedAtMs - ms);
    r.listeningAtMs = move(r.listeningAtMs);
    r.signalledAtMs = move(r.signalledAtMs);
    r.exitedAtMs = move(r.exitedAtMs);
    for (const event of r.events) event.atMs = round(event.atMs - ms);
  }

  /** SIGKILL, if it still runs. */
  kill(): void {
    if (!this.alive) return;
    this.report.killed = true;
    this.#child.kill('SIGKILL');
  }
}

function parseEvent(line: string): { event: string; [key: string]: unknown } | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    if (value !== null && typeof value === 'object' && typeof (value as { event?: unknown }).event === 'string') {
      return value as { event: string };
    }
  } catch {
    // Not a protocol line.
  }
  return undefined;
}

/** `promise`, or a rejection with `timeout()` after `ms`. */
export function bounded<V>(promise: Promise<V>, ms: number, timeout: () => Error): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
