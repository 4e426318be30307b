// What the clients saw, as it happens: each request's outcome (a status, or
// a kind and code), the response latencies, and a timeline in buckets of
// `bucketMs` with the instants marked (by `during()`, or each restart).
import type { RawOutcome } from './clients.js';
import { classifyError, emptyCounts, type Counts, type ErrorKind } from './outcome.js';

/** One request as it settled: a response (`ok` below 400, `httpError` from 400) or a failure by kind; times in ms since the load began. */
export interface Settlement {
  outcome: 'ok' | 'httpError' | ErrorKind;
  beganMs: number;
  settledMs: number;
}

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

/** The recorder's part of the report. */
export interface Measurements {
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
}

/** Milliseconds as reported: two decimals. */
export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export class Recorder {
  readonly #start = performance.now();
  readonly #bucketMs: number;
  readonly #buckets: TimelineBucket[] = [];
  readonly #kinds = emptyCounts();
  readonly #errors: Record<string, number> = {};
  readonly #examples: Record<string, string> = {};
  readonly #status: Record<string, number> = {};
  readonly #marks: { label: string; atMs: number }[] = [];
  #started = 0;
  #settled = 0;
  #responses = 0;
  #ok = 0;
  #httpErrors = 0;
  #inFlight = 0;
  #latencies = new Float64Array(1024);

  constructor(bucketMs: number) {
    this.#bucketMs = bucketMs;
  }

  /** Requests started so far. */
  get started(): number {
    return this.#started;
  }

  /** Milliseconds since the load began. */
  elapsed(): number {
    return performance.now() - this.#start;
  }

  mark(label: string, atMs = this.elapsed()): void {
    this.#marks.push({ label: String(label), atMs: round(atMs) });
  }

  /** A request starts; its start time goes back to {@link settle}. */
  begin(): number {
    this.#started++;
    this.#inFlight++;
    return performance.now();
  }

  settle(outcome: RawOutcome, began: number): Settlement {
    const now = performance.now();
    const times = { beganMs: began - this.#start, settledMs: now - this.#start };
    this.#inFlight--;
    this.#settled++;
    const bucket = this.#bucket(now - this.#start);
    if (outcome.status !== undefined) {
      if (this.#responses === this.#latencies.length) {
        const grown = new Float64Array(this.#latencies.length * 2);
        grown.set(this.#latencies);
        this.#latencies = grown;
      }
      this.#latencies[this.#responses++] = now - began;
      this.#status[outcome.status] = (this.#status[outcome.status] ?? 0) + 1;
      if (outcome.status < 400) {
        this.#ok++;
        bucket.ok++;
        return { outcome: 'ok', ...times };
      }
      this.#httpErrors++;
      bucket.httpError++;
      return { outcome: 'httpError', ...times };
    }
    const { kind, code } = classifyError(outcome.error, outcome.socketError);
    this.#kinds[kind]++;
    bucket[kind]++;
    this.#errors[code] = (this.#errors[code] ?? 0) + 1;
    if (this.#examples[code] === undefined) {
      const error = outcome.error as { message?: unknown } | undefined;
      this.#examples[code] = typeof error?.message === 'string' ? error.message : String(outcome.error);
    }
    return { outcome: kind, ...times };
  }

  /** The current bucket's requests in flight, and what `options.sample` returned. */
  sample(samples: Record<string, number> | undefined): void {
    const bucket = this.#bucket(this.elapsed());
    bucket.inFlight = this.#inFlight;
    if (samples !== undefined) bucket.samples = { ...samples };
  }

  /** The counts so far, for `onProgress`. */
  progress(): { elapsedMs: number; requests: number; responses: number; kinds: Counts; inFlight: number } {
    return {
      elapsedMs: this.elapsed(),
      requests: this.#settled,
      responses: this.#responses,
      kinds: { ...this.#kinds },
      inFlight: this.#inFlight,
    };
  }

  measurements(): Measurements {
    return {
      requests: this.#settled,
      responses: this.#responses,
      ok: this.#ok,
      httpErrors: this.#httpErrors,
      status: this.#status,
      kinds: this.#kinds,
      errors: this.#errors,
      examples: this.#examples,
      latency: this.#latency(),
      timeline: { bucketMs: this.#bucketMs, buckets: this.#buckets },
      marks: this.#marks,
    };
  }

  #bucket(at: number): TimelineBucket {
    const index = Math.floor(at / this.#bucketMs);
    while (this.#buckets.length <= index) {
      this.#buckets.push({
        t: this.#buckets.length * this.#bucketMs,
        ok: 0,
        httpError: 0,
        ...emptyCounts(),
        inFlight: this.#inFlight,
      });
    }
    return this.#buckets[index]!;
  }

  #latency(): LatencySummary {
    const sorted = this.#latencies.subarray(0, this.#responses).sort();
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
