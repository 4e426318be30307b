// Issue 4, test 8: random sequences of client and API actions against a
// Listener on the fake binding, checking the state machine's invariants
// after every step and once everything has been driven to 'close'.
import fc from 'fast-check';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { ListenSocket, Listener, type CloseReport, type ListenerState } from '../../src/index.js';
import { FakeBinding, FakeSink, type FakeHandle } from './fake-binding.js';

type Action =
  | { kind: 'syn' }
  | { kind: 'complete' }
  | { kind: 'poll' }
  | { kind: 'release'; pick: number }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'close'; timeout: number; forceTimeout: number }
  | { kind: 'closeFromHandler'; where: 'listener' | 'server' }
  | { kind: 'advance'; ms: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'syn' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'complete' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'poll' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'pause' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'resume' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('close' as const),
      timeout: fc.constantFrom(0, 50, 300, 1000),
      forceTimeout: fc.constantFrom(0, 100, 1000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('closeFromHandler' as const), where: fc.constantFrom('listener' as const, 'server' as const) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1, 100, 200, 1000) }) },
);

const config = fc.record({
  maxConnections: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  syncClose: fc.boolean(),
  /** Connections accepted before the random actions, so that drains last. */
  openFirst: fc.nat(4),
});

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

class Model {
  readonly binding = new FakeBinding();
  readonly sink: FakeSink;
  listener!: Listener<ReturnType<FakeSink['wrap']>>;
  handle!: FakeHandle;
  readonly states: ListenerState[] = ['accepting'];
  readonly errors: Error[] = [];
  readonly violations: string[] = [];
  closeEvents = 0;
  /** The promise of the drain under way, and what became of each drain's promise. */
  current: Promise<CloseReport> | undefined;
  readonly settled: { promise: Promise<CloseReport>; outcome?: string; report?: CloseReport }[] = [];
  /** When the drain under way reaches its deadline (fake clock), and whether any did. */
  deadlineAt: number | undefined;
  deadlinePassed = false;
  #closing = false;
  readonly #nested: Promise<CloseReport>[] = [];

  constructor(maxConnections: number | undefined, syncClose: boolean) {
    this.sink = new FakeSink(maxConnections, syncClose);
  }

  async open(): Promise<void> {
    this.listener = new Listener(await ListenSocket.open({ host: '127.0.0.1' }, this.binding), this.sink);
    this.handle = this.binding.last;
    this.listener.on('error', (error: Error) => this.errors.push(error));
    this.listener.on('draining', () => this.states.push('draining'));
    this.listener.on('accepting', () => this.states.push('accepting'));
    this.listener.on('close', () => {
      this.states.push('closed');
      this.closeEvents++;
      // Phase 2 runs only once every connection has been released.
      if (this.sink.open.size !== 0) this.violations.push(`'close' with ${this.sink.open.size} connections open`);
      if (this.handle.queue.length !== 0) this.violations.push(`'close' with ${this.handle.queue.length} queued`);
    });
  }

  close(timeout: number, forceTimeout: number): void {
    const wasDraining = this.listener.state === 'draining';
    const wasClosed = this.listener.state === 'closed';
    const outer = !this.#closing;
    this.#closing = true;
    let promise: Promise<CloseReport>;
    try {
      promise = this.listener.close({ timeout, forceTimeout });
    } finally {
      if (outer) this.#closing = false;
    }
    if (wasDraining || wasClosed) {
      // A close() from a handler while an outer close() has not returned yet
      // is compared once the outer one has.
      if (this.#closing) this.#nested.push(promise);
      else if (promise !== this.current) this.violations.push('close() returned a new promise for the same close');
      return;
    }
    this.current = promise;
    for (const nested of this.#nested.splice(0)) {
      if (nested !== promise) this.violations.push('a nested close() returned a new promise for the same close');
    }
    this.deadlineAt = Date.now() + timeout;
    const entry: Model['settled'][number] = { promise };
    this.settled.push(entry);
    promise.then(
      (report) => {
        entry.outcome = 'resolved';
        entry.report = report;
      },
      (error: { code?: string }) => {
        entry.outcome = error.code ?? String(error);
      },
    );
  }

  async step(a: Action): Promise<void> {
    const { listener, handle, sink } = this;
    switch (a.kind) {
      case 'syn':
        handle.syn();
        break;
      case 'complete':
        handle.completeHandshake();
        break;
      case 'poll':
        handle.poll();
        break;
      case 'release': {
        const open = [...sink.open].filter((connection) => !connection.destroyed);
        open[a.pick % Math.max(open.length, 1)]?.destroy();
        break;
      }
      case 'pause':
      case 'resume':
        if (listener.state === 'closed') {
          expect(() => listener[a.kind]()).toThrow(expect.objectContaining({ code: 'ERR_LISTENER_CLOSED' }));
        } else {
          if (a.kind === 'resume' && listener.state === 'draining') this.deadlineAt = undefined;
          listener[a.kind]();
        }
        break;
      case 'close':
        this.close(a.timeout, a.forceTimeout);
        break;
      case 'closeFromHandler': {
        const closeOnce = (): void => this.close(50, 50);
        if (a.where === 'listener') listener.once('connection', closeOnce);
        else {
          sink.onDeliver = () => {
            sink.onDeliver = undefined;
            closeOnce();
          };
        }
        break;
      }
      case 'advance':
        await vi.advanceTimersByTimeAsync(a.ms);
        break;
    }
    await settle();
    this.check();
  }

  check(): void {
    const { listener, handle, sink } = this;
    if (this.deadlineAt !== undefined && Date.now() >= this.deadlineAt) this.deadlinePassed = true;
    const closed = listener.state === 'closed';
    // 0 once closed, else the listener's own reference plus each connection not yet closed.
    expect(listener.count).toBe(closed ? 0 : 1 + sink.open.size);
    expect(this.closeEvents).toBe(closed ? 1 : 0);
    expect(handle.closeCalls).toBe(closed ? 1 : 0);
    expect(sink.closedCalls).toBe(closed ? 1 : 0);
    expect(handle.useAfterClose).toEqual([]);
    expect([...this.violations, ...sink.violations]).toEqual([]);
    expect(this.errors).toEqual([]);
    // The promise: nothing that reached the accept queue is ever reset.
    expect(handle.resetQueued).toBe(0);
    // Handshakes in SYN_RECV are waited for until the deadline.
    if (handle.resetHandshakes > 0) expect(this.deadlinePassed).toBe(true);
    // State sequence: only the edges of the state machine.
    for (let i = 1; i < this.states.length; i++) {
      const edge = `${this.states[i - 1]}->${this.states[i]}`;
      expect(['accepting->draining', 'draining->accepting', 'draining->closed']).toContain(edge);
    }
  }

  /** Lets every handshake finish or time out and every connection end: the listener must close. */
  async finish(): Promise<void> {
    for (let round = 0; round < 50 && this.listener.state !== 'closed'; round++) {
      if (this.listener.state === 'accepting') this.close(100, 100);
      this.handle.poll();
      await vi.advanceTimersByTimeAsync(250);
      await settle();
      this.check();
    }
    expect(this.listener.state).toBe('closed');
    await settle();
    const outcomes = this.settled.map((entry) => entry.outcome);
    // Every drain but the last was aborted by resume(); the last resolved.
    expect(outcomes.slice(0, -1).every((outcome) => outcome === 'ERR_CLOSE_ABORTED')).toBe(true);
    expect(outcomes[outcomes.length - 1]).toBe('resolved');
    const report = this.settled[this.settled.length - 1]!.report!;
    // Each connection of the last drain was served or cut at the deadline, once.
    expect(report.served + report.ended).toBe(report.openAtClose + report.accepted);
    expect(report.destroyed).toBeLessThanOrEqual(report.ended);
    expect(this.listener.close()).toBe(this.current);
    // Every accepted fd was closed (closing one twice is a sink violation).
    expect([...this.sink.delivered.keys()].filter((connection) => !this.sink.closedFds.has(connection.fd))).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  }
}

test('random connect / release / pause / resume / close / resume-while-draining sequences keep the invariants', async () => {
  await fc.assert(
    fc.asyncProperty(config, fc.array(action, { maxLength: 60 }), async ({ maxConnections, syncClose, openFirst }, actions) => {
      vi.clearAllTimers();
      const model = new Model(maxConnections, syncClose);
      await model.open();
      model.check();
      for (let i = 0; i < openFirst; i++) {
        for (const kind of ['syn', 'complete', 'poll'] as const) await model.step({ kind });
      }
      for (const a of actions) await model.step(a);
      await model.finish();
    }),
    { numRuns: Number(process.env.RUNS ?? 1000) },
  );
}, 60_000);
