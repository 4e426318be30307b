import { invalidArgType, invalidArgValue } from '../core/errors.js';
import { validateBoolean, validateInteger, validateObject, validateString } from '../core/validate.js';
import { createClient } from './clients.js';
import { LoadError } from './errors.js';
import type { Counts } from './outcome.js';
import { Recorder, round, type Measurements } from './recorder.js';
import { resolveTarget } from './target.js';

/** What `during()` is given. */
export interface DuringContext {
  /** Records an instant on the timeline (`report.marks`), e.g. `'closed'`. */
  mark(label: string): void;
  /** Milliseconds since the load began. */
  elapsed(): number;
}

/** Options for {@link runUnderLoad}. */
export interface LoadOptions<T = unknown> {
  /** An http: or https: URL. Only loopback addresses unless `allowRemote`. */
  url: string | URL;
  /**
   * Clients, each with one request in flight at a time.
   * @default 16
   */
  concurrency?: number;
  /**
   * Milliseconds during which new requests start; requests in flight then
   * finish (bounded by `requestTimeout`).
   * @default 5000
   */
  duration?: number;
  /**
   * `'new'`: a fresh connection (and TLS handshake) per request, sent with
   * `Connection: close`. `'keep-alive'`: each client keeps its connection
   * (HTTP/1.1 keep-alive, or one HTTP/2 session per client).
   * @default 'new'
   */
  connection?: 'new' | 'keep-alive';
  /** `'h2'` speaks HTTP/2 (over TLS for https:, h2c for http:). @default 'http1' */
  protocol?: 'http1' | 'h2';
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
  /** Called every `progressInterval` ms while the load runs. */
  onProgress?: (progress: LoadProgress) => void;
  /** @default 250 */
  progressInterval?: number;
  /** Stops starting requests; the report is returned with `stoppedBy: 'signal'`. */
  signal?: AbortSignal;
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
const MAX_DURATION_MS = 3_600_000;

function optional<V>(value: V | undefined, fallback: V): V {
  return value === undefined ? fallback : value;
}

function validate<T>(options: LoadOptions<T>) {
  validateObject('options', options);
  const duration = validateInteger('options.duration', optional(options.duration, 5000), 1, MAX_DURATION_MS);
  const connection = optional(options.connection, 'new');
  if (connection !== 'new' && connection !== 'keep-alive') {
    throw invalidArgValue('options.connection', connection, "must be 'new' or 'keep-alive'");
  }
  const protocol = optional(options.protocol, 'http1');
  if (protocol !== 'http1' && protocol !== 'h2') throw invalidArgValue('options.protocol', protocol, "must be 'http1' or 'h2'");
  if (options.during !== undefined && typeof options.during !== 'function') {
    throw invalidArgType('options.during', 'of type function', options.during);
  }
  if (options.sample !== undefined && typeof options.sample !== 'function') {
    throw invalidArgType('options.sample', 'of type function', options.sample);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw invalidArgType('options.onProgress', 'of type function', options.onProgress);
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
    duration,
    connection,
    protocol,
    concurrency: validateInteger('options.concurrency', optional(options.concurrency, 16), 1, MAX_CONCURRENCY),
    duringAt: validateInteger('options.duringAt', optional(options.duringAt, Math.floor(duration / 2)), 0, duration),
    duringTimeout: validateInteger('options.duringTimeout', optional(options.duringTimeout, 30_000), 0, MAX_DURATION_MS),
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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
  const client = createClient(target, config);
  const recorder = new Recorder(config.bucketMs);
  const run: { stoppedBy?: LoadReport['stoppedBy']; during?: DuringCall<T> } = {};
  const stop = (why: LoadReport['stoppedBy']): void => {
    run.stoppedBy ??= why;
  };
  const onAbort = (): void => stop('signal');
  if (options.signal?.aborted) stop('signal');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const startDuring = (): void => {
    if (options.during !== undefined && run.during === undefined && run.stoppedBy === undefined) {
      run.during = callDuring(options.during, recorder);
    }
  };
  const duringState = (): LoadProgress['during'] => {
    if (run.during !== undefined) return run.during.info.settledAtMs < 0 ? 'running' : 'settled';
    return options.during === undefined ? 'none' : 'waiting';
  };

  const sample = (): void => recorder.sample(options.sample?.());
  sample();
  const timers: NodeJS.Timeout[] = [
    setTimeout(() => stop('duration'), config.duration),
    setTimeout(startDuring, config.duringAt),
    setInterval(sample, config.bucketMs),
  ];
  const onProgress = options.onProgress;
  if (onProgress !== undefined) {
    const progress = (): LoadProgress => ({
      ...recorder.progress(),
      durationMs: config.duration,
      phase: run.stoppedBy === undefined ? 'running' : 'finishing',
      during: duringState(),
    });
    timers.push(setInterval(() => onProgress(progress()), config.progressInterval));
  }

  const worker = async (slot: number): Promise<void> => {
    while (run.stoppedBy === undefined) {
      if (recorder.started >= config.maxRequests) {
        stop('maxRequests');
        break;
      }
      const began = recorder.begin();
      const outcome = await client.request(slot);
      recorder.settle(outcome, began);
      if (outcome.status === undefined && config.backoff > 0 && run.stoppedBy === undefined) await sleep(config.backoff);
    }
  };

  try {
    if (config.duringAt === 0) startDuring();
    await Promise.all(Array.from({ length: config.concurrency }, (_, slot) => worker(slot)));
  } finally {
    for (const timer of timers) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    client.close();
  }

  const report: LoadReport<T> = {
    target: { url: target.url.href, address: target.address, port: target.port, secure: target.secure },
    protocol: config.protocol,
    connection: config.connection,
    concurrency: config.concurrency,
    durationMs: config.duration,
    elapsedMs: round(recorder.elapsed()),
    // The workers return only once the load was stopped.
    stoppedBy: run.stoppedBy ?? 'duration',
    ...recorder.measurements(),
  };
  if (run.during !== undefined) await awaitDuring(run.during, report, config.duringTimeout);
  return report;
}
