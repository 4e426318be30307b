import { invalidArgType, invalidArgValue } from '../core/errors.js';
import { validateBoolean, validateInteger, validateObject, validateString } from '../core/validate.js';
import { createClient } from './clients.js';
import { LoadError } from './errors.js';
import type { Counts } from './outcome.js';
import { Recorder, round, type Measurements, type Settlement } from './recorder.js';
import { resolveTarget, type Target } from './target.js';

/** What `during()` is given. */
export interface DuringContext {
  /** Records an instant on the timeline (`report.marks`), e.g. `'closed'`. */
  mark(label: string): void;
  /** Milliseconds since the load began. */
  elapsed(): number;
}

/** What every load of the kit takes: the clients, their pace and what is recorded. */
export interface BaseLoadOptions {
  /**
   * Clients, each with one request in flight at a time.
   * @default 16
   */
  concurrency?: number;
  /**
   * `'new'`: a fresh connection (and TLS handshake) per request, sent with
   * `Connection: close`. `'keep-alive'`: each client keeps its connection
   * (HTTP/1.1 keep-alive, or one HTTP/2 session per client).
   * @default 'new'
   */
  connection?: 'new' | 'keep-alive';
  /** `'h2'` speaks HTTP/2 (over TLS for https:, h2c for http:). @default 'http1' */
  protocol?: 'http1' | 'h2';
  /** Milliseconds until a request without a complete response counts as a timeout. @default 10000 */
  requestTimeout?: number;
  /** At most this many requests in all. @default 5000000 */
  maxRequests?: number;
  /**
   * Milliseconds a client waits after a failed request before its next one,
   * so that a refusing server is not hammered in a tight loop.
   * @default 20
   */
  backoff?: number;
  /** @default 'GET' */
  method?: string;
  headers?: Record<string, string>;
  /** Trusted CA for https (e.g. the server's self-signed certificate); turns verification on. */
  ca?: string | Buffer;
  /**
   * Verify the server's certificate. A load test usually targets a server with
   * a self-signed certificate, as wrk and h2load do: off unless `ca` is given.
   * @default ca !== undefined
   */
  rejectUnauthorized?: boolean;
  /** Allow a target that is not a loopback address: only for a server you own. @default false */
  allowRemote?: boolean;
  /** Timeline bucket width in milliseconds. @default 100 */
  bucketMs?: number;
  /** Called at the end of every bucket; the numbers go into that bucket's `samples` (e.g. an accept-queue depth). */
  sample?: () => Record<string, number> | undefined;
  /** @default 250 */
  progressInterval?: number;
  /** Stops starting requests; the report is returned with `stoppedBy: 'signal'`. */
  signal?: AbortSignal;
}

/** Options for {@link runUnderLoad}. */
export interface LoadOptions<T = unknown> extends BaseLoadOptions {
  /** An http: or https: URL. Only loopback addresses unless `allowRemote`. */
  url: string | URL;
  /**
   * Milliseconds during which new requests start; requests in flight then
   * finish (bounded by `requestTimeout`).
   * @default 5000
   */
  duration?: number;
  /**
   * Called once, `duringAt` ms into the load, with the load still running:
   * the reconfigure or close under test. Its result goes into the report; if
   * it throws, `runUnderLoad` rejects with `ERR_DURING_FAILED` (the report on
   * the error).
   */
  during?: (context: DuringContext) => T | Promise<T>;
  /** @default duration / 2 */
  duringAt?: number;
  /**
   * Milliseconds to wait for `during()` to settle after the load ended, then
   * reject with `ERR_DURING_TIMEOUT`.
   * @default 30000
   */
  duringTimeout?: number;
  /** Called every `progressInterval` ms while the load runs. */
  onProgress?: (progress: LoadProgress) => void;
}

export interface LoadProgress {
  elapsedMs: number;
  durationMs: number;
  requests: number;
  responses: number;
  kinds: Counts;
  inFlight: number;
  /** `'running'` while requests start, `'finishing'` while the last ones settle. */
  phase: 'running' | 'finishing';
  during: 'none' | 'waiting' | 'running' | 'settled';
}

export interface LoadReport<T = unknown> extends Measurements {
  target: { url: string; address: string; port: number; secure: boolean };
  protocol: 'http1' | 'h2';
  connection: 'new' | 'keep-alive';
  concurrency: number;
  durationMs: number;
  /** From the first request to the last settled one. */
  elapsedMs: number;
  stoppedBy: 'duration' | 'maxRequests' | 'signal';
  /** Set once `during()` was called (not when the load ended before `duringAt`). */
  during?: { atMs: number; settledAtMs: number; result?: T };
}

const MAX_CONCURRENCY = 10_000;
export const MAX_DURATION_MS = 3_600_000;

export function optional<V>(value: V | undefined, fallback: V): V {
  return value === undefined ? fallback : value;
}

/** The options of {@link BaseLoadOptions}, checked, with their defaults. */
export function validateBase(options: BaseLoadOptions) {
  const connection = optional(options.connection, 'new');
  if (connection !== 'new' && connection !== 'keep-alive') {
    throw invalidArgValue('options.connection', connection, "must be 'new' or 'keep-alive'");
  }
  const protocol = optional(options.protocol, 'http1');
  if (protocol !== 'http1' && protocol !== 'h2') throw invalidArgValue('options.protocol', protocol, "must be 'http1' or 'h2'");
  if (options.sample !== undefined && typeof options.sample !== 'function') {
    throw invalidArgType('options.sample', 'of type function', options.sample);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an instance of AbortSignal', options.signal);
  }
  const headers = optional(options.headers, {});
  validateObject('options.headers', headers);
  for (const [name, value] of Object.entries(headers)) validateString(`options.headers.${name}`, value);
  if (options.ca !== undefined && typeof options.ca !== 'string' && !Buffer.isBuffer(options.ca)) {
    throw invalidArgType('options.ca', 'of type string or an instance of Buffer', options.ca);
  }
  return {
    connection,
    protocol,
    concurrency: validateInteger('options.concurrency', optional(options.concurrency, 16), 1, MAX_CONCURRENCY),
    requestTimeout: validateInteger('options.requestTimeout', optional(options.requestTimeout, 10_000), 1, 600_000),
    maxRequests: validateInteger('options.maxRequests', optional(options.maxRequests, 5_000_000), 1, 100_000_000),
    backoff: validateInteger('options.backoff', optional(options.backoff, 20), 0, 10_000),
    bucketMs: validateInteger('options.bucketMs', optional(options.bucketMs, 100), 10, 60_000),
    progressInterval: validateInteger('options.progressInterval', optional(options.progressInterval, 250), 10, 60_000),
    method: validateString('options.method', optional(options.method, 'GET')),
    headers,
    rejectUnauthorized: validateBoolean(
      'options.rejectUnauthorized',
      optional(options.rejectUnauthorized, options.ca !== undefined),
    ),
    ca: options.ca,
    allowRemote: validateBoolean('options.allowRemote', optional(options.allowRemote, false)),
  };
}

export type BaseSettings = ReturnType<typeof validateBase>;

function validate<T>(options: LoadOptions<T>) {
  validateObject('options', options);
  const base = validateBase(options);
  const duration = validateInteger('options.duration', optional(options.duration, 5000), 1, MAX_DURATION_MS);
  if (options.during !== undefined && typeof options.during !== 'function') {
    throw invalidArgType('options.during', 'of type function', options.during);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw invalidArgType('options.onProgress', 'of type function', options.onProgress);
  }
  return {
    ...base,
    duration,
    duringAt: validateInteger('options.duringAt', optional(options.duringAt, Math.floor(duration / 2)), 0, duration),
    duringTimeout: validateInteger('options.duringTimeout', optional(options.duringTimeout, 30_000), 0, MAX_DURATION_MS),
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Why the clients stopped starting requests. */
export type StopReason = LoadReport['stoppedBy'] | 'restarts';

/**
 * The clients of one load: `concurrency` workers, each with one request in
 * flight, recording every outcome, until `stop()` (or the signal, or
 * `maxRequests`). What ends the load, and what happens meanwhile, is the
 * scenario's: runUnderLoad's duration and `during()`, runRestarts' restarts.
 */
export class LoadEngine {
  readonly recorder: Recorder;
  readonly #settings: BaseSettings;
  readonly #target: Target;
  readonly #sample: BaseLoadOptions['sample'];
  readonly #signal: AbortSignal | undefined;
  readonly #onSettle: ((settlement: Settlement) => void) | undefined;
  #stoppedBy: StopReason | undefined;
  readonly #onAbort = (): void => this.stop('signal');
  #resolveStopped!: (why: StopReason) => void;
  /** Resolves with the reason once the load is told to stop. */
  readonly stopped = new Promise<StopReason>((resolve) => {
    this.#resolveStopped = resolve;
  });

  constructor(
    settings: BaseSettings,
    target: Target,
    hooks: { sample?: BaseLoadOptions['sample']; signal?: AbortSignal; onSettle?: (settlement: Settlement) => void } = {},
  ) {
    this.#settings = settings;
    this.#target = target;
    this.#sample = hooks.sample;
    this.#signal = hooks.signal;
    this.#onSettle = hooks.onSettle;
    this.recorder = new Recorder(settings.bucketMs);
    if (this.#signal?.aborted) this.stop('signal');
  }

  get stoppedBy(): StopReason | undefined {
    return this.#stoppedBy;
  }

  /** Stops starting requests (the first reason given is kept); those in flight settle. */
  stop(why: StopReason): void {
    if (this.#stoppedBy !== undefined) return;
    this.#stoppedBy = why;
    this.#resolveStopped(why);
  }

  /** Runs the clients; resolves once every one has stopped and the client's connections are closed. */
  async run(): Promise<void> {
    const settings = this.#settings;
    const recorder = this.recorder;
    const client = createClient(this.#target, settings);
    const sample = (): void => recorder.sample(this.#sample?.());
    sample();
    const sampler = setInterval(sample, settings.bucketMs);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    const worker = async (slot: number): Promise<void> => {
      while (this.#stoppedBy === undefined) {
        if (recorder.started >= settings.maxRequests) {
          this.stop('maxRequests');
          break;
        }
        const began = recorder.begin();
        const outcome = await client.request(slot);
        const settlement = recorder.settle(outcome, began);
        this.#onSettle?.(settlement);
        if (outcome.status === undefined && settings.backoff > 0 && this.#stoppedBy === undefined) await sleep(settings.backoff);
      }
    };
    try {
      await Promise.all(Array.from({ length: settings.concurrency }, (_, slot) => worker(slot)));
    } finally {
      clearInterval(sampler);
      this.#signal?.removeEventListener('abort', this.#onAbort);
      client.close();
    }
  }

  /** The report's common part, once `run()` has resolved. */
  report(): Omit<LoadReport, 'during' | 'durationMs' | 'stoppedBy'> {
    const target = this.#target;
    return {
      target: { url: target.url.href, address: target.address, port: target.port, secure: target.secure },
      protocol: this.#settings.protocol,
      connection: this.#settings.connection,
      concurrency: this.#settings.concurrency,
      elapsedMs: round(this.recorder.elapsed()),
      ...this.recorder.measurements(),
    };
  }
}

/** A call of `options.during`: its times and result for the report; what it threw, once settled. */
interface DuringCall<T> {
  info: NonNullable<LoadReport<T>['during']>;
  failure: Promise<{ error: unknown } | undefined>;
}

function callDuring<T>(during: NonNullable<LoadOptions<T>['during']>, recorder: Recorder): DuringCall<T> {
  const info: DuringCall<T>['info'] = { atMs: round(recorder.elapsed()), settledAtMs: -1 };
  const context: DuringContext = { mark: (label) => recorder.mark(label), elapsed: () => recorder.elapsed() };
  const failure = (async () => during(context))().then(
    (value) => {
      info.settledAtMs = round(recorder.elapsed());
      info.result = value;
      return undefined;
    },
    (error: unknown) => {
      info.settledAtMs = round(recorder.elapsed());
      return { error };
    },
  );
  return { info, failure };
}

/**
 * Once the load has ended: waits up to `timeoutMs` for `during()` to settle,
 * puts its times and result on the report, and throws (the report attached)
 * if it failed or did not settle.
 */
async function awaitDuring<T>(call: DuringCall<T>, report: LoadReport<T>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const failure = await Promise.race([call.failure, timedOut]);
  clearTimeout(timer);
  report.during = call.info;
  if (failure === 'timeout') {
    throw new LoadError('ERR_DURING_TIMEOUT', `during() had not settled ${timeoutMs} ms after the load ended`, { report });
  }
  if (failure !== undefined) {
    throw new LoadError('ERR_DURING_FAILED', 'during() threw; the report is on error.report', { cause: failure.error, report });
  }
}

/**
 * Drives a server with `concurrency` clients for `duration` ms, calls
 * `during()` in the middle (the reconfigure or close under test), and reports
 * every outcome: responses by status, failures by kind and code (a RST is
 * told apart from a refusal, a clean close, a TLS error and a timeout),
 * latencies and a timeline. Node's own http, https and http2 clients;
 * loopback targets only unless `allowRemote`.
 */
export async function runUnderLoad<T = undefined>(options: LoadOptions<T>): Promise<LoadReport<T>> {
  const config = validate(options);
  const target = await resolveTarget(options.url, config.allowRemote);
  const engine = new LoadEngine(config, target, { sample: options.sample, signal: options.signal });
  const recorder = engine.recorder;
  let duringCall: DuringCall<T> | undefined;
  const startDuring = (): void => {
    if (options.during !== undefined && duringCall === undefined && engine.stoppedBy === undefined) {
      duringCall = callDuring(options.during, recorder);
    }
  };
  const duringState = (): LoadProgress['during'] => {
    if (duringCall !== undefined) return duringCall.info.settledAtMs < 0 ? 'running' : 'settled';
    return options.during === undefined ? 'none' : 'waiting';
  };

  const timers: NodeJS.Timeout[] = [
    setTimeout(() => engine.stop('duration'), config.duration),
    setTimeout(startDuring, config.duringAt),
  ];
  const onProgress = options.onProgress;
  if (onProgress !== undefined) {
    const progress = (): LoadProgress => ({
      ...recorder.progress(),
      durationMs: config.duration,
      phase: engine.stoppedBy === undefined ? 'running' : 'finishing',
      during: duringState(),
    });
    timers.push(setInterval(() => onProgress(progress()), config.progressInterval));
  }

  try {
    if (config.duringAt === 0) startDuring();
    await engine.run();
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }

  const report: LoadReport<T> = {
    ...engine.report(),
    durationMs: config.duration,
    // The workers return only once the load was stopped, and never by 'restarts'.
    stoppedBy: (engine.stoppedBy ?? 'duration') as LoadReport['stoppedBy'],
  };
  if (duringCall !== undefined) await awaitDuring(duringCall, report, config.duringTimeout);
  return report;
}
