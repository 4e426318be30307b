import { invalidArgType, invalidArgValue } from '../core/errors.js';
import { validateBoolean, validateInteger, validateObject, validateString } from '../core/validate.js';
import { createClient, type RawOutcome } from './clients.js';
import { LoadError } from './errors.js';
import { ERROR_KINDS, classifyError, type ErrorKind } from './outcome.js';
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

export type Counts = Record<ErrorKind, number>;

/** Outcomes settled within one bucket of the timeline. */
export interface TimelineBucket extends Counts {
  /** Start of the bucket, ms since the load began. */
  t: number;
  /** Responses with status < 400. */
  ok: number;
  /** Responses with status >= 400. */
  httpError: number;
  /** Requests in flight when the bucket ended. */
  inFlight: number;
  /** What `options.sample` returned at the end of the bucket. */
  samples?: Record<string, number>;
}

/** Response latencies in milliseconds (complete responses, any status). */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
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

export interface LoadReport<T = unknown> {
  target: { url: string; address: string; port: number; secure: boolean };
  protocol: 'http1' | 'h2';
  connection: 'new' | 'keep-alive';
  concurrency: number;
  durationMs: number;
  /** From the first request to the last settled one. */
  elapsedMs: number;
  stoppedBy: 'duration' | 'maxRequests' | 'signal';
  /** Requests settled: responses plus errors. */
  requests: number;
  /** Complete responses, any status. */
  responses: number;
  /** Responses with status < 400. */
  ok: number;
  /** Responses with status >= 400. */
  httpErrors: number;
  status: Record<string, number>;
  /** Failed requests by kind; see `ErrorKind`. */
  kinds: Counts;
  /** Failed requests by code: system codes (`ECONNRESET`…) or ours (`EOF_BEFORE_RESPONSE`…; see `ERROR_CODES`). */
  errors: Record<string, number>;
  /** The first message seen for each code. */
  examples: Record<string, string>;
  latency: LatencySummary;
  timeline: { bucketMs: number; buckets: TimelineBucket[] };
  /** Instants recorded by `during()` through `context.mark()`. */
  marks: { label: string; atMs: number }[];
  /** Set once `during()` was called (not when the load ended before `duringAt`). */
  during?: { atMs: number; settledAtMs: number; result?: T };
}

const MAX_CONCURRENCY = 10_000;
const MAX_DURATION_MS = 3_600_000;

function emptyCounts(): Counts {
  return { reset: 0, refused: 0, closed: 0, retryable: 0, tls: 0, timeout: 0, other: 0 };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

class Recorder {
  readonly start = performance.now();
  readonly bucketMs: number;
  readonly buckets: TimelineBucket[] = [];
  readonly kinds = emptyCounts();
  readonly errors: Record<string, number> = {};
  readonly examples: Record<string, string> = {};
  readonly status: Record<string, number> = {};
  readonly marks: { label: string; atMs: number }[] = [];
  started = 0;
  settled = 0;
  responses = 0;
  ok = 0;
  httpErrors = 0;
  inFlight = 0;
  #latencies = new Float64Array(1024);

  constructor(bucketMs: number) {
    this.bucketMs = bucketMs;
  }

  elapsed(): number {
    return performance.now() - this.start;
  }

  bucket(at = this.elapsed()): TimelineBucket {
    const index = Math.floor(at / this.bucketMs);
    while (this.buckets.length <= index) {
      this.buckets.push({
        t: this.buckets.length * this.bucketMs,
        ok: 0,
        httpError: 0,
        ...emptyCounts(),
        inFlight: this.inFlight,
      });
    }
    return this.buckets[index]!;
  }

  record(outcome: RawOutcome, began: number): void {
    const now = performance.now();
    const bucket = this.bucket(now - this.start);
    this.settled++;
    if (outcome.status !== undefined) {
      if (this.responses === this.#latencies.length) {
        const grown = new Float64Array(this.#latencies.length * 2);
        grown.set(this.#latencies);
        this.#latencies = grown;
      }
      this.#latencies[this.responses++] = now - began;
      this.status[outcome.status] = (this.status[outcome.status] ?? 0) + 1;
      if (outcome.status < 400) {
        this.ok++;
        bucket.ok++;
      } else {
        this.httpErrors++;
        bucket.httpError++;
      }
      return;
    }
    const { kind, code } = classifyError(outcome.error, outcome.socketError);
    this.kinds[kind]++;
    bucket[kind]++;
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    if (this.examples[code] === undefined) {
      const error = outcome.error as { message?: unknown } | undefined;
      this.examples[code] = typeof error?.message === 'string' ? error.message : String(outcome.error);
    }
  }

  latency(): LatencySummary {
    const sorted = this.#latencies.subarray(0, this.responses).sort();
    const count = sorted.length;
    if (count === 0) return { count, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
    // Nearest rank.
    const at = (p: number): number => sorted[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)]!;
    let sum = 0;
    for (const value of sorted) sum += value;
    return {
      count,
      mean: round(sum / count),
      p50: round(at(50)),
      p90: round(at(90)),
      p99: round(at(99)),
      max: round(sorted[count - 1]!),
    };
  }
}

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
    allowRemote: validateBoolean('options.allowRemote', optional(options.allowRemote, false)),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
  const signal = options.signal;
  const client = createClient(
    target,
    {
      connection: config.connection,
      concurrency: config.concurrency,
      method: config.method,
      headers: config.headers,
      requestTimeout: config.requestTimeout,
      ca: options.ca,
      rejectUnauthorized: config.rejectUnauthorized,
    },
    config.protocol,
  );
  const recorder = new Recorder(config.bucketMs);
  let stopping = false;
  let stoppedBy: LoadReport['stoppedBy'] = 'duration';
  const stop = (why: LoadReport['stoppedBy']): void => {
    if (stopping) return;
    stopping = true;
    stoppedBy = why;
  };
  const onAbort = (): void => stop('signal');
  if (signal?.aborted) stop('signal');
  signal?.addEventListener('abort', onAbort, { once: true });

  let duringState: LoadProgress['during'] = options.during === undefined ? 'none' : 'waiting';
  let duringPromise: Promise<{ ok: true; value: T } | { ok: false; error: unknown }> | undefined;
  let duringInfo: { atMs: number; settledAtMs: number; result?: T } | undefined;
  const context: DuringContext = {
    mark: (label) => recorder.marks.push({ label: String(label), atMs: round(recorder.elapsed()) }),
    elapsed: () => recorder.elapsed(),
  };
  const startDuring = (): void => {
    const during = options.during;
    if (during === undefined || duringPromise !== undefined || stopping) return;
    duringState = 'running';
    const info: { atMs: number; settledAtMs: number; result?: T } = { atMs: round(recorder.elapsed()), settledAtMs: -1 };
    duringInfo = info;
    duringPromise = (async () => during(context))().then(
      (value) => {
        duringState = 'settled';
        info.settledAtMs = round(recorder.elapsed());
        info.result = value;
        return { ok: true as const, value };
      },
      (error: unknown) => {
        duringState = 'settled';
        info.settledAtMs = round(recorder.elapsed());
        return { ok: false as const, error };
      },
    );
  };

  const progress = (): LoadProgress => ({
    elapsedMs: recorder.elapsed(),
    durationMs: config.duration,
    requests: recorder.settled,
    responses: recorder.responses,
    kinds: { ...recorder.kinds },
    inFlight: recorder.inFlight,
    phase: stopping ? 'finishing' : 'running',
    during: duringState,
  });
  const sample = (): void => {
    const bucket = recorder.bucket();
    bucket.inFlight = recorder.inFlight;
    const samples = options.sample?.();
    if (samples !== undefined) bucket.samples = { ...samples };
  };
  sample();
  const timers: NodeJS.Timeout[] = [
    setTimeout(() => stop('duration'), config.duration),
    setTimeout(startDuring, config.duringAt),
    setInterval(sample, config.bucketMs),
  ];
  if (options.onProgress !== undefined) {
    const onProgress = options.onProgress;
    timers.push(setInterval(() => onProgress(progress()), config.progressInterval));
  }

  const worker = async (slot: number): Promise<void> => {
    while (!stopping) {
      if (recorder.started >= config.maxRequests) {
        stop('maxRequests');
        break;
      }
      recorder.started++;
      recorder.inFlight++;
      const began = performance.now();
      const outcome = await client.request(slot);
      recorder.inFlight--;
      recorder.record(outcome, began);
      if (outcome.status === undefined && config.backoff > 0 && !stopping) await sleep(config.backoff);
    }
  };

  try {
    if (config.duringAt === 0) startDuring();
    await Promise.all(Array.from({ length: config.concurrency }, (_, slot) => worker(slot)));
  } finally {
    for (const timer of timers) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    client.close();
  }
  const elapsedMs = round(recorder.elapsed());

  const report: LoadReport<T> = {
    target: { url: target.url.href, address: target.address, port: target.port, secure: target.secure },
    protocol: config.protocol,
    connection: config.connection,
    concurrency: config.concurrency,
    durationMs: config.duration,
    elapsedMs,
    stoppedBy,
    requests: recorder.settled,
    responses: recorder.responses,
    ok: recorder.ok,
    httpErrors: recorder.httpErrors,
    status: recorder.status,
    kinds: recorder.kinds,
    errors: recorder.errors,
    examples: recorder.examples,
    latency: recorder.latency(),
    timeline: { bucketMs: config.bucketMs, buckets: recorder.buckets },
    marks: recorder.marks,
  };

  if (duringPromise !== undefined) {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), config.duringTimeout);
    });
    const settled = await Promise.race([duringPromise, timedOut]);
    clearTimeout(timer);
    report.during = duringInfo;
    if (settled === 'timeout') {
      throw new LoadError(
        'ERR_DURING_TIMEOUT',
        `during() had not settled ${config.duringTimeout} ms after the load ended`,
        { report },
      );
    }
    if (!settled.ok) {
      throw new LoadError('ERR_DURING_FAILED', 'during() threw; the report is on error.report', {
        cause: settled.error,
        report,
      });
    }
  }
  return report;
}

export { ERROR_KINDS };
