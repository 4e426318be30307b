// Bounded waits. Every bound here (a number of tries, or a time) is a hang
// guard, never a timing assertion: a test that passes stays far below it.
// Under valgrind (test/valgrind/run.sh) every process runs many times slower,
// so each bound is multiplied by GL_TEST_HANG_SCALE.
import type { EventEmitter } from 'node:events';

export const HANG_SCALE = Math.max(1, Number(process.env.GL_TEST_HANG_SCALE ?? '1') || 1);

/** A hang bound for one wait, far above what any wait needs. */
export const BOUND_MS = 20_000;

/** What a wait was for: text, or a function that describes the state it timed out in. */
export type What = string | (() => string);

const describe = (what: What): string => (typeof what === 'function' ? what() : what);

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Tests `check` (sync or async) up to `tries` times, `intervalMs` apart; throws naming `what` if it never holds. */
export async function waitFor(
  what: What,
  check: () => boolean | Promise<boolean>,
  { tries = 500, intervalMs = 20 }: { tries?: number; intervalMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < tries * HANG_SCALE; i++) {
    if (await check()) return;
    await sleep(intervalMs);
  }
  if (!(await check())) throw new Error(`timed out waiting for ${describe(what)}`);
}

/** `promise`, or a rejection naming `what` once `boundMs` passed. */
export function within<T>(promise: Promise<T>, what: What, boundMs = BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${describe(what)}`)), boundMs * HANG_SCALE);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/**
 * The arguments of the next `event` of `emitter`, bounded. Unlike
 * `events.once` it does not listen for 'error': on a Listener that would turn
 * the warnings it emits when nobody listens into events.
 */
export function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, boundMs = BOUND_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      emitter.removeListener(event, onEvent);
      reject(new Error(`timed out waiting for '${event}'`));
    }, boundMs * HANG_SCALE);
    emitter.once(event, onEvent);
  });
}

/**
 * Resolves once `check` holds, tested now and each time `emitter` emits one
 * of `events`: event-driven, bounded.
 */
export function when(emitter: EventEmitter, events: string[], check: () => boolean, what: What): Promise<void> {
  if (check()) return Promise.resolve();
  let test!: () => void;
  const held = new Promise<void>((resolve) => {
    test = (): void => {
      if (check()) resolve();
    };
    for (const event of events) emitter.on(event, test);
  });
  return within(held, what).finally(() => {
    for (const event of events) emitter.removeListener(event, test);
  });
}

/** A counter whose `reached(n)` resolves once it has counted `n` (bounded). */
export class Counter {
  #count = 0;
  readonly #waiters: { n: number; resolve: () => void }[] = [];

  get count(): number {
    return this.#count;
  }

  add(): void {
    this.#count++;
    for (const waiter of this.#waiters.filter((w) => w.n <= this.#count)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  reached(n: number, what: string): Promise<void> {
    if (this.#count >= n) return Promise.resolve();
    return within(new Promise<void>((resolve) => this.#waiters.push({ n, resolve })), what);
  }
}

/**
 * Blocks the event loop (1 ms waits, no yielding) until `check` holds or
 * `maxIterations` waits passed; returns whether it held.
 */
export function blockUntil(check: () => boolean, maxIterations = 10_000): boolean {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < maxIterations * HANG_SCALE; i++) {
    if (check()) return true;
    Atomics.wait(cell, 0, 0, 1);
  }
  return check();
}
