import os from 'node:os';
import { invalidArgType, invalidArgValue } from '../core/errors.js';
import { validateBoolean, validateInteger, validateObject } from '../core/validate.js';
import { Listener, type CloseReport } from '../listener.js';
import { notifyStopping } from '../reconfigure/systemd.js';
import { Readiness } from './readiness.js';

/** Options for {@link closeOnSignals}. */
export interface ShutdownOptions {
  /**
   * The signals that start the shutdown; the same signals, received again
   * during it, force it.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals?: NodeJS.Signals[];
  /**
   * Milliseconds after the first signal during which the servers keep
   * serving normally (readiness already false) while the load balancer
   * takes the instance out of rotation; then the drain.
   * @default 0
   */
  preStopDelay?: number;
  /** `CloseOptions.timeout` of every listener's close. @default 30000 */
  timeout?: number;
  /** `CloseOptions.forceTimeout` of every listener's close. @default 5000 */
  forceTimeout?: number;
  /**
   * `process.exit()` with the report's exit code once every listener is
   * closed; `false`: only settle `done`.
   * @default true
   */
  exit?: boolean;
  /**
   * Turned not ready at the first signal (reason `'signal'`). To turn it
   * not ready when a listener closes by itself, `readiness.track(listener)`.
   */
  readiness?: Readiness;
}

/** What a shutdown did. */
export interface ShutdownReport {
  /** The first signal; null when `shutdown()` started it. */
  signal: NodeJS.Signals | null;
  /** A second signal forced it: every connection still open was ended, then destroyed, at once. */
  forced: boolean;
  /**
   * Some connection did not finish by itself: it was ended or destroyed by a
   * deadline (`timeout`, `forceTimeout`) or by the forcing, or the queue was
   * lost (`CloseReport.queueLost`).
   */
  timedOut: boolean;
  /** One per listener, in the order given. */
  reports: CloseReport[];
  /**
   * 0: a clean drain. 128 + the number of the second signal when it was
   * forced (143 for SIGTERM, 130 for SIGINT, as a shell reports a process
   * killed by it). 1 ({@link EXIT_TIMED_OUT}): not forced, but timed out.
   */
  exitCode: number;
}

/** The handle {@link closeOnSignals} returns. */
export interface ShutdownHandle {
  /** Settles with the report once a shutdown ran (never rejects). */
  readonly done: Promise<ShutdownReport>;
  /** Starts the same shutdown as a first signal would (idempotent); returns `done`. */
  shutdown(): Promise<ShutdownReport>;
  /** Removes the signal handlers (idempotent); a shutdown already running goes on. */
  dispose(): void;
}

/** The exit code of a shutdown that was not forced but had to cut connections. */
export const EXIT_TIMED_OUT = 1;

const DEFAULT_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
// The signals a process cannot handle.
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP']);

// The live handle each listener belongs to: a second one would drain it
// twice and race the first to process.exit().
const owners = new WeakMap<Listener, Shutdown>();

/**
 * Two-stage shutdown on signals. The first signal turns `readiness` not
 * ready, sends `STOPPING=1` to systemd (when `NOTIFY_SOCKET` is set; once per
 * process), waits `preStopDelay`, then closes every listener in parallel
 * (HTTP and raw alike; one already closing or closed counts with its
 * report). A second signal during the drain forces it: the listeners'
 * deadlines move to now ({@link Listener.expedite}). Once all are closed the
 * process exits with the report's `exitCode`, unless `exit: false`.
 *
 * The handle installs one handler per signal and removes exactly them on
 * `dispose()`, or when the shutdown is done. A listener belongs to one live
 * handle: a second call with it throws until the first is disposed.
 */
export function closeOnSignals(listeners: Listener | readonly Listener[], options: ShutdownOptions = {}): ShutdownHandle {
  const list = validateListeners(listeners);
  validateObject('options', options);
  const settings: Settings = {
    signals: validateSignals(options.signals ?? DEFAULT_SIGNALS),
    preStopDelay: validateInteger('options.preStopDelay', options.preStopDelay ?? 0, 0, MAX_TIMEOUT_MS),
    close: {},
    exit: validateBoolean('options.exit', options.exit ?? true),
    readiness: options.readiness,
  };
  if (options.timeout !== undefined) settings.close.timeout = validateInteger('options.timeout', options.timeout, 0, MAX_TIMEOUT_MS);
  if (options.forceTimeout !== undefined) {
    settings.close.forceTimeout = validateInteger('options.forceTimeout', options.forceTimeout, 0, MAX_TIMEOUT_MS);
  }
  if (settings.readiness !== undefined && !(settings.readiness instanceof Readiness)) {
    throw invalidArgType('options.readiness', 'an instance of Readiness', settings.readiness);
  }
  for (const listener of list) {
    if (owners.has(listener)) {
      throw invalidArgValue('listeners', 'listener', 'holds a listener that another closeOnSignals() handle closes; dispose() that one first');
    }
  }
  return new Shutdown(list, settings);
}

interface Settings {
  signals: NodeJS.Signals[];
  preStopDelay: number;
  close: { timeout?: number; forceTimeout?: number };
  exit: boolean;
  readiness: Readiness | undefined;
}

function validateListeners(value: unknown): Listener[] {
  const list = value instanceof Listener ? [value] : value;
  if (!Array.isArray(list)) throw invalidArgType('listeners', 'a Listener or an array of them', value);
  list.forEach((listener: unknown, index) => {
    if (!(listener instanceof Listener)) throw invalidArgType(`listeners[${index}]`, 'an instance of Listener', listener);
  });
  return [...(list as Listener[])];
}

function validateSignals(value: unknown): NodeJS.Signals[] {
  if (!Array.isArray(value)) throw invalidArgType('options.signals', 'an array of signal names', value);
  for (const signal of value as unknown[]) {
    if (typeof signal !== 'string') throw invalidArgType('options.signals', 'an array of signal names', value);
    if (!(signal in os.constants.signals) || UNCATCHABLE.has(signal)) {
      throw invalidArgValue('options.signals', signal, 'must name signals a process can handle');
    }
  }
  return [...new Set(value as NodeJS.Signals[])];
}

/**
 * `armed` → (first signal or shutdown()) `preStop` → `draining` → `done`.
 * A second signal in `preStop` or `draining` forces the drain.
 */
type Phase = 'armed' | 'preStop' | 'draining' | 'done';

class Shutdown implements ShutdownHandle {
  readonly done: Promise<ShutdownReport>;
  readonly #listeners: Listener[];
  readonly #settings: Settings;
  readonly #handlers = new Map<NodeJS.Signals, () => void>();
  readonly #resolve: (report: ShutdownReport) => void;
  #phase: Phase = 'armed';
  #signal: NodeJS.Signals | null = null;
  #forcedBy: NodeJS.Signals | undefined;
  #preStop: NodeJS.Timeout | undefined;

  constructor(listeners: Listener[], settings: Settings) {
    this.#listeners = listeners;
    this.#settings = settings;
    let resolve!: (report: ShutdownReport) => void;
    this.done = new Promise((res) => (resolve = res));
    this.#resolve = resolve;
    for (const listener of listeners) owners.set(listener, this);
    for (const signal of settings.signals) {
      const handler = (): void => this.#onSignal(signal);
      this.#handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  shutdown(): Promise<ShutdownReport> {
    if (this.#phase === 'armed') this.#start(null);
    return this.done;
  }

  dispose(): void {
    for (const [signal, handler] of this.#handlers) process.removeListener(signal, handler);
    this.#handlers.clear();
    for (const listener of this.#listeners) {
      if (owners.get(listener) === this) owners.delete(listener);
    }
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#phase === 'armed') this.#start(signal);
    else if (this.#phase !== 'done') this.#force(signal);
  }

  #start(signal: NodeJS.Signals | null): void {
    this.#phase = 'preStop';
    this.#signal = signal;
    this.#settings.readiness?.notReady('signal');
    try {
      notifyStopping();
    } catch (error) {
      process.emitWarning(error as Error);
    }
    if (this.#settings.preStopDelay > 0) this.#preStop = setTimeout(() => this.#drain(), this.#settings.preStopDelay);
    else this.#drain();
  }

  #drain(): void {
    if (this.#phase !== 'preStop') return;
    this.#phase = 'draining';
    clearTimeout(this.#preStop);
    // A listener's close rejects only when resume() aborts it, and #close
    // then closes it again: `done` never rejects.
    void Promise.all(this.#listeners.map((listener) => this.#close(listener))).then((reports) => this.#finish(reports));
  }

  // The listener's close, or the one already under way (or done). A resume()
  // that aborts it does not cancel the shutdown: it closes again.
  async #close(listener: Listener): Promise<CloseReport> {
    for (;;) {
      try {
        return await (this.#forcedBy === undefined ? listener.close(this.#settings.close) : listener.expedite());
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_CLOSE_ABORTED') continue;
        // Not a close's own outcome (a bug, or a system error thrown
        // synchronously): said, and the listener destroyed, so that `done`
        // still settles with one report per listener.
        process.emitWarning(error as Error);
        return listener.destroy();
      }
    }
  }

  #force(signal: NodeJS.Signals): void {
    if (this.#forcedBy !== undefined) return;
    this.#forcedBy = signal;
    this.#drain();
    for (const listener of this.#listeners) {
      // Its close (started by #drain) settles the report; the promise is that one.
      listener.expedite().catch(() => {});
    }
  }

  #finish(reports: CloseReport[]): void {
    this.#phase = 'done';
    this.dispose();
    const timedOut = reports.some((report) => report.ended + report.destroyed + report.queueLost > 0);
    const forcedBy = this.#forcedBy;
    const exitCode = forcedBy !== undefined ? 128 + os.constants.signals[forcedBy] : timedOut ? EXIT_TIMED_OUT : 0;
    this.#resolve({ signal: this.#signal, forced: forcedBy !== undefined, timedOut, reports, exitCode });
    // After the callbacks of `done` have run.
    if (this.#settings.exit) setImmediate(() => process.exit(exitCode));
  }
}
