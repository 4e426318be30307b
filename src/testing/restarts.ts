// The restart scenario: a server restarted `restarts` times, one every
// `every` ms, under load. Each request's outcome is counted in the window of
// the restart it settled in, and each restart is marked on the timeline.
// The restart is either a callback (anything: replace(), systemctl, a
// signal) or the kit's own: a new server process per restart, spawned from
// a command, in one of three orders (close-then-listen, handover,
// listen-then-close).
import { invalidArgType, invalidArgValue } from '../core/errors.js';
import { validateInteger, validateObject } from '../core/validate.js';
import { LoadError } from './errors.js';
import {
  LoadEngine,
  MAX_DURATION_MS,
  optional,
  sleep,
  validateBase,
  type BaseLoadOptions,
  type LoadReport,
} from './load.js';
import { emptyCounts, type Counts } from './outcome.js';
import { round, type Settlement } from './recorder.js';
import { ServerProcess, bounded, type ServerProcessReport } from './server-process.js';
import { resolveTarget, type Target } from './target.js';

/**
 * How the kit restarts a server process (`command`):
 * - `'close-then-listen'`: the running process is sent `stopSignal`; once it
 *   has exited, the next one is started. The plain restart.
 * - `'handover'`: the next process is started while the running one serves;
 *   it takes the listening socket over (`listen(server, { handover })`) and
 *   the old one exits by itself once drained. The kit never signals it.
 * - `'listen-then-close'`: the next process is started; once it listens,
 *   the old one is sent `stopSignal` (a fresh bind beside the old one,
 *   `reusePort`).
 */
export type RestartMode = 'close-then-listen' | 'handover' | 'listen-then-close';

/** What a `restart` callback is given. */
export interface RestartContext {
  /** 1 for the first restart. */
  index: number;
  /** Records an instant on the timeline (`report.marks`); each restart's start is marked `restart <index>` already. */
  mark(label: string): void;
  /** Milliseconds since the load began. */
  elapsed(): number;
}

/** Which process {@link runRestarts} starts for a restart: its index (0 for the first) and the port to listen on. */
export interface ServerProcessInfo {
  index: number;
  /** The port the first process printed; `undefined` for the first process itself. */
  port: number | undefined;
}

interface RestartBaseOptions extends BaseLoadOptions {
  /** Restarts in the run. @default 10 */
  restarts?: number;
  /**
   * Milliseconds from the start of one restart to the start of the next
   * (right after it, if a restart takes longer); the first restart comes
   * `every` ms into the load, and the load goes on `every` ms after the last
   * one began.
   * @default 500
   */
  every?: number;
  /** Called every `progressInterval` ms while the load runs. */
  onProgress?: (progress: RestartProgress) => void;
}

/**
 * A new server process per restart. The process must print, on stdout, one
 * JSON line `{"event":"listening","port":<port>}` once it accepts
 * connections; `{"event":"error",…}` before that fails the run. Every other
 * line that is a JSON object with an `event` is kept in the report with the
 * time it arrived (for figures of your own: timestamps, close reports);
 * anything else on stdout is ignored. `stopSignal` must make it close and
 * exit once drained; with `mode: 'handover'` it must exit by itself once a
 * successor took its socket over.
 */
export interface RestartCommandOptions extends RestartBaseOptions {
  /**
   * The argv of a server process, spawned without a shell (use
   * `process.execPath` for node). A function gets the process's index and
   * the port to bind: every process after the first must listen on the port
   * the first one printed.
   */
  command: readonly string[] | ((server: ServerProcessInfo) => readonly string[]);
  mode: RestartMode;
  /** The load's target, from the first process's port. @default (port) => `http://127.0.0.1:${port}/` */
  url?: string | URL | ((port: number) => string | URL);
  cwd?: string;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** The signal that closes a server process (a restart, and the last process at the end). @default 'SIGTERM' */
  stopSignal?: NodeJS.Signals;
  /** Milliseconds a process may take to print its listening line. @default 10000 */
  startTimeout?: number;
  /**
   * Milliseconds a process may take to exit once signalled, or once its
   * successor listens (`'handover'`); then it is killed with SIGKILL and
   * reported as `killed`.
   * @default 30000
   */
  exitTimeout?: number;
}

/** Your own restart, called `restarts` times against a server you started. */
export interface RestartCallbackOptions<T = unknown> extends RestartBaseOptions {
  /** An http: or https: URL. Only loopback addresses unless `allowRemote`. */
  url: string | URL;
  /**
   * One restart: resolves once it is done (the new server accepts). Its
   * result goes into the restart's window; if it throws or takes longer than
   * `restartTimeout`, `runRestarts` rejects with `ERR_RESTART_FAILED` (the
   * report on the error).
   */
  restart: (context: RestartContext) => T | Promise<T>;
  /** @default 30000 */
  restartTimeout?: number;
}

export type RestartOptions<T = unknown> = RestartCommandOptions | RestartCallbackOptions<T>;

/** Outcomes of the requests that settled within one window of the run. */
export interface WindowCounts {
  requests: number;
  /** Complete responses, any status. */
  served: number;
  /** Responses with status >= 400 (counted in `served` too). */
  httpErrors: number;
  /** Requests without a complete response: `reset + refused + other`. */
  failed: number;
  reset: number;
  refused: number;
  /** Failed otherwise: clean closes, TLS errors, timeouts, refused HTTP/2 streams; see `kinds`. */
  other: number;
  kinds: Counts;
  /**
   * From the first refusal to the last in the window (the instants clients
   * were refused): how long nothing accepted. 0 if none, or one, was refused.
   */
  refusalWindowMs: number;
}

/** One restart and the requests that settled from its start to the next restart's (or the end of the load). */
export interface RestartWindow<T = unknown> extends WindowCounts {
  /** 1 for the first restart. */
  index: number;
  /** When the restart began (marked `restart <index>` on the timeline), ms since the load began. */
  atMs: number;
  /** When it was done: the callback settled; with `command`, the new process printed its listening line. */
  doneMs: number;
  /** What the callback returned; with `command`, the new process's pid. */
  result?: T;
}

export interface RestartProgress {
  elapsedMs: number;
  requests: number;
  responses: number;
  kinds: Counts;
  inFlight: number;
  /** Restarts begun so far. */
  restarted: number;
  restarts: number;
  /** `'running'` while requests start, `'finishing'` while the last ones settle. */
  phase: 'running' | 'finishing';
}

export interface RestartReport<T = unknown> extends Omit<LoadReport, 'during' | 'stoppedBy' | 'durationMs'> {
  /** Milliseconds during which requests started: until the load was stopped. */
  durationMs: number;
  /** With `command`, how each restart went; `'callback'` with `restart`. */
  mode: RestartMode | 'callback';
  every: number;
  /** `'restarts'`: every restart was done and the last window ran its `every` ms. */
  stoppedBy: 'restarts' | 'maxRequests' | 'signal';
  /** Requests that settled before the first restart. */
  before: WindowCounts;
  restarts: RestartWindow<T>[];
  /** With `command`: every server process, in the order started. */
  processes?: ServerProcessReport[];
  /** With `command`: the most server processes alive at one time. */
  maxAlive?: number;
}

class Window {
  readonly counts: WindowCounts = {
    requests: 0,
    served: 0,
    httpErrors: 0,
    failed: 0,
    reset: 0,
    refused: 0,
    other: 0,
    kinds: emptyCounts(),
    refusalWindowMs: 0,
  };
  #firstRefused = Infinity;
  #lastRefused = -Infinity;

  add({ outcome, settledMs }: Settlement): void {
    const c = this.counts;
    c.requests++;
    if (outcome === 'ok' || outcome === 'httpError') {
      c.served++;
      if (outcome === 'httpError') c.httpErrors++;
      return;
    }
    c.failed++;
    c.kinds[outcome]++;
    if (outcome === 'reset') c.reset++;
    else if (outcome === 'refused') {
      c.refused++;
      // The instants of refusal: a refused request may have begun long
      // before (a SYN dropped by a closing listener's gate is sent again 1 s later).
      this.#firstRefused = Math.min(this.#firstRefused, settledMs);
      this.#lastRefused = Math.max(this.#lastRefused, settledMs);
      c.refusalWindowMs = round(this.#lastRefused - this.#firstRefused);
    } else c.other++;
  }
}

function validateRestarts<T>(options: RestartOptions<T>) {
  validateObject('options', options);
  const base = validateBase(options);
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw invalidArgType('options.onProgress', 'of type function', options.onProgress);
  }
  const callback = 'restart' in options && options.restart !== undefined;
  const command = 'command' in options && options.command !== undefined;
  if (callback === command) {
    throw invalidArgValue('options', '{…}', 'must have either command (a server process per restart) or restart (a callback)');
  }
  // The options of the other form are absent: their defaults stand, unused.
  const c = options as Partial<RestartCommandOptions>;
  const r = options as Partial<RestartCallbackOptions<T>>;
  if (callback && typeof r.restart !== 'function') throw invalidArgType('options.restart', 'of type function', r.restart);
  if (command) {
    if (typeof c.command !== 'function' && (!Array.isArray(c.command) || c.command.length === 0 || !c.command.every((a) => typeof a === 'string'))) {
      throw invalidArgType('options.command', 'a non-empty array of strings or a function', c.command);
    }
    if (!['close-then-listen', 'handover', 'listen-then-close'].includes(c.mode as string)) {
      throw invalidArgValue('options.mode', c.mode, "must be 'close-then-listen', 'handover' or 'listen-then-close'");
    }
    if (c.url !== undefined && typeof c.url !== 'string' && !(c.url instanceof URL) && typeof c.url !== 'function') {
      throw invalidArgType('options.url', 'of type string or function, or an instance of URL', c.url);
    }
  }
  const stopSignal = optional(c.stopSignal, 'SIGTERM');
  if (typeof stopSignal !== 'string') throw invalidArgType('options.stopSignal', 'of type string', stopSignal);
  return {
    ...base,
    restarts: validateInteger('options.restarts', optional(options.restarts, 10), 0, 100_000),
    every: validateInteger('options.every', optional(options.every, 500), 1, MAX_DURATION_MS),
    restartTimeout: validateInteger('options.restartTimeout', optional(r.restartTimeout, 30_000), 1, MAX_DURATION_MS),
    startTimeout: validateInteger('options.startTimeout', optional(c.startTimeout, 10_000), 1, MAX_DURATION_MS),
    exitTimeout: validateInteger('options.exitTimeout', optional(c.exitTimeout, 30_000), 1, MAX_DURATION_MS),
    stopSignal,
  };
}

type Config = ReturnType<typeof validateRestarts>;

/**
 * The server processes of a `command` run: the one serving, the ones still
 * draining, and every one started.
 */
class ServerProcesses {
  readonly all: ServerProcess[] = [];
  readonly #options: RestartCommandOptions;
  readonly #config: Config;
  readonly #clock: () => number;
  readonly #exits: Promise<void>[] = [];
  #port: number | undefined;
  #alive = 0;
  maxAlive = 0;

  constructor(options: RestartCommandOptions, config: Config, clock: () => number) {
    this.#options = options;
    this.#config = config;
    this.#clock = clock;
  }

  get current(): ServerProcess {
    return this.all[this.all.length - 1]!;
  }

  /** Starts the next process; resolves with it once it listens (on the first one's port). */
  async start(): Promise<ServerProcess> {
    const index = this.all.length;
    const { command, cwd, env } = this.#options;
    const argv = typeof command === 'function' ? command({ index, port: this.#port }) : command;
    const server = new ServerProcess(index, argv, { ...(cwd !== undefined ? { cwd } : {}), ...(env !== undefined ? { env } : {}) }, this.#clock);
    this.all.push(server);
    this.maxAlive = Math.max(this.maxAlive, ++this.#alive);
    void server.exited.then(() => this.#alive--);
    const port = await server.listening(this.#config.startTimeout);
    if (this.#port !== undefined && port !== this.#port) {
      throw new Error(`server process ${index} listens on port ${port}, not on ${this.#port} as the first one`);
    }
    this.#port = port;
    return server;
  }

  /** One restart in `mode`; resolves with the new process's pid once it listens. */
  async restart(): Promise<number> {
    const { mode } = this.#options;
    const { stopSignal, exitTimeout } = this.#config;
    const old = this.current;
    if (mode === 'close-then-listen') await old.stop(stopSignal, exitTimeout);
    const next = await this.start();
    if (mode === 'handover') this.#exits.push(old.awaitExit(exitTimeout));
    else if (mode === 'listen-then-close') this.#exits.push(old.stop(stopSignal, exitTimeout));
    return next.report.pid;
  }

  /** Every process but the current one has exited (or was killed at its bound). */
  retired(): Promise<void> {
    return Promise.all(this.#exits).then(() => undefined);
  }

  /** Stops the current process and waits for every process to be gone. */
  async stopAll(): Promise<void> {
    const current = this.all.length > 0 ? this.current : undefined;
    await Promise.all([current?.stop(this.#config.stopSignal, this.#config.exitTimeout), this.retired()]);
  }

  kill(): void {
    for (const server of this.all) server.kill();
  }

  /** Moves the times recorded so far `ms` earlier (onto the load's clock). */
  shift(ms: number): void {
    for (const server of this.all) server.shift(ms);
  }
}

/** A failure of the run: a server process that did not start or exit as it must, or a restart callback that threw or hung. */
function restartFailed(cause: unknown, report?: RestartReport<unknown>): LoadError {
  const message = cause instanceof Error ? cause.message : String(cause);
  const where = report === undefined ? '' : '; the report is on error.report';
  return new LoadError('ERR_RESTART_FAILED', `the restart scenario failed: ${message}${where}`, { cause, report });
}

/**
 * A server restarted `restarts` times, one every `every` ms, under load:
 * each request's outcome is counted in the window of the restart it settled
 * in (`report.restarts[i]`: served, reset, refused, other, and how long
 * clients were refused), and each restart is marked on the timeline.
 *
 * With `command`, the kit starts the server itself, a process per restart
 * (see {@link RestartCommandOptions} for what the process must print), and
 * restarts it as `mode` says; every process is reaped before it resolves.
 * With `restart`, the callback is the restart, against the server at `url`.
 */
export function runRestarts(options: RestartCommandOptions): Promise<RestartReport<number>>;
export function runRestarts<T = undefined>(options: RestartCallbackOptions<T>): Promise<RestartReport<T>>;
export async function runRestarts<T>(options: RestartOptions<T>): Promise<RestartReport<T | number>> {
  const config = validateRestarts(options);
  // Process times are taken on this clock, then moved onto the load's once it starts.
  let origin = performance.now();
  const clock = (): number => performance.now() - origin;
  const command = 'command' in options && options.command !== undefined ? options : undefined;
  const processes = command === undefined ? undefined : new ServerProcesses(command, config, clock);

  let target: Target;
  try {
    let url: string | URL;
    if (command === undefined) {
      url = (options as RestartCallbackOptions<T>).url;
    } else {
      const port = await processes!.start().then((server) => server.report.port!, (error: unknown) => Promise.reject(restartFailed(error)));
      url = command.url === undefined ? `http://127.0.0.1:${port}/` : typeof command.url === 'function' ? command.url(port) : command.url;
    }
    target = await resolveTarget(url, config.allowRemote);
  } catch (error) {
    processes?.kill();
    await processes?.stopAll();
    throw error;
  }

  const before = new Window();
  const windows: { window: Window; info: Omit<RestartWindow<T | number>, keyof WindowCounts> }[] = [];
  const load = new LoadEngine(config, target, {
    sample: options.sample,
    signal: options.signal,
    onSettle: (settlement) => (windows[windows.length - 1]?.window ?? before).add(settlement),
  });
  const recorder = load.recorder;
  const loadOrigin = performance.now() - recorder.elapsed();
  processes?.shift(loadOrigin - origin);
  origin = loadOrigin;

  const restartOnce = (index: number): Promise<T | number> => {
    if (processes !== undefined) return processes.restart();
    const context: RestartContext = { index, mark: (label) => recorder.mark(label), elapsed: () => recorder.elapsed() };
    const { restart } = options as RestartCallbackOptions<T>;
    return bounded(
      (async () => restart(context))(),
      config.restartTimeout,
      () => new Error(`restart ${index} did not settle within ${config.restartTimeout} ms`),
    );
  };
  // Waits until `atMs` into the load; false if the load was stopped meanwhile.
  const until = async (atMs: number): Promise<boolean> => {
    const wait = atMs - recorder.elapsed();
    if (wait > 0) await Promise.race([sleep(wait), load.stopped]);
    return load.stoppedBy === undefined;
  };
  let failure: { error: unknown } | undefined;
  const scenario = async (): Promise<void> => {
    try {
      let next = config.every;
      for (let index = 1; index <= config.restarts; index++) {
        if (!(await until(next))) return;
        const atMs = recorder.elapsed();
        recorder.mark(`restart ${index}`, atMs);
        const info: (typeof windows)[number]['info'] = { index, atMs: round(atMs), doneMs: -1 };
        windows.push({ window: new Window(), info });
        info.result = await restartOnce(index);
        info.doneMs = round(recorder.elapsed());
        next = atMs + config.every;
      }
      if (!(await until(next))) return;
      // The last window ends once the old processes are gone: their drains count too.
      if (processes !== undefined) await Promise.race([processes.retired(), load.stopped]);
    } catch (error) {
      failure = { error };
    } finally {
      load.stop('restarts');
    }
  };
  const onProgress = options.onProgress;
  const progress =
    onProgress === undefined
      ? undefined
      : setInterval(() => {
          onProgress({
            ...recorder.progress(),
            restarted: windows.length,
            restarts: config.restarts,
            phase: load.stoppedBy === undefined ? 'running' : 'finishing',
          });
        }, config.progressInterval);
  let durationMs = 0;
  void load.stopped.then(() => (durationMs = round(recorder.elapsed())));
  let measured: ReturnType<LoadEngine['report']>;
  try {
    [measured] = await Promise.all([load.run().then(() => load.report()), scenario()]);
  } finally {
    clearInterval(progress);
    if (failure !== undefined) processes?.kill();
    await processes?.stopAll();
  }

  const report: RestartReport<T | number> = {
    ...measured,
    durationMs,
    mode: command === undefined ? 'callback' : command.mode,
    every: config.every,
    stoppedBy: (load.stoppedBy ?? 'restarts') as RestartReport['stoppedBy'],
    before: before.counts,
    restarts: windows.map(({ window, info }) => ({ ...info, ...window.counts })),
    ...(processes !== undefined ? { processes: processes.all.map((server) => server.report), maxAlive: processes.maxAlive } : {}),
  };
  if (failure !== undefined) throw restartFailed(failure.error, report);
  return report;
}
