// Random sequences of client and API actions against a real listener feeding
// an http server on loopback: clients that connect and ask, keep-alive
// clients, silent clients, clients that reset, user listeners that throw,
// close / server.close() / pause / resume, and time passing. After every
// step: no client whose connect succeeded was reset unless the test reset it
// or the force deadline destroyed its connection; listener.count is exactly 1
// + the connections open on the server side; the state moved only along the
// state machine's edges. At the end everything is driven to 'closed', the
// close settles, and no fd is left behind. The fake-binding model
// (model.property.test.ts) explores the same machine with a fake clock and
// many more runs; this one checks it against the kernel.
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { listen, type CloseReport, type Listener, type ListenerState } from '../../src/index.js';
import { RawClient, codeOf, fdsBackTo, nextEvent, openFdTargets, rawGet, sleep, waitFor, within } from '../helpers/kit.js';

/**
 * once: one request with `Connection: close`. keepAlive: requests one after
 * the other on one connection. silent: connects and sends nothing.
 * stubborn: a keep-alive client that never sends its FIN (allowHalfOpen), so
 * only a deadline ends its connection.
 */
type ClientKind = 'once' | 'keepAlive' | 'silent' | 'stubborn';

type Action =
  | { kind: 'connect'; client: ClientKind; delay: number }
  | { kind: 'request'; pick: number; delay: number }
  | { kind: 'reset'; pick: number }
  | { kind: 'throwIn'; event: 'connection' | 'draining' }
  | { kind: 'close'; timeout: number; forceTimeout: number }
  | { kind: 'serverClose' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'sleep'; ms: number };

const clientKind = fc.constantFrom<ClientKind>('once', 'once', 'keepAlive', 'keepAlive', 'silent', 'stubborn');
/** How long the handler takes to answer: at once, shorter than most deadlines, longer than some. */
const handlerDelay = fc.constantFrom(0, 0, 40, 300);

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('connect' as const), client: clientKind, delay: handlerDelay }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('request' as const), pick: fc.nat(20), delay: handlerDelay }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reset' as const), pick: fc.nat(20) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('throwIn' as const), event: fc.constantFrom('connection' as const, 'draining' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('close' as const),
      timeout: fc.constantFrom(0, 50, 200, 500),
      forceTimeout: fc.constantFrom(0, 100, 300),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'serverClose' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'pause' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'resume' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('sleep' as const), ms: fc.constantFrom(0, 5, 30, 100) }) },
);

const RUNS = Number(process.env.RUNS ?? 40);
const MAX_ACTIONS = 20;
// server.close() closes with the listener's defaults.
const DEFAULT_CLOSE = { timeout: 30_000, forceTimeout: 5_000 };
// How long past its force deadline a close may take to settle: a hang bound
// for a busy machine, never a timing assertion.
const SETTLE_SLACK_MS = 15_000;

/** Thrown by the test's own listeners: the library reports it on its own tick. */
class UserBug extends Error {}

// The library rethrows what a listener threw on its own tick, as Node reports
// a throwing listener: an uncaught exception, which would fail the vitest
// run. While this file runs, a UserBug is counted here; any other uncaught
// exception still goes to vitest's own handlers. (Replacing process.nextTick
// would not do: vitest swaps it during its RPC calls.)
let reportedBugs = 0;
let vitestHandlers: NodeJS.UncaughtExceptionListener[] = [];
const onUncaught: NodeJS.UncaughtExceptionListener = (error, origin) => {
  if (error instanceof UserBug) reportedBugs++;
  else for (const handler of vitestHandlers) handler(error, origin);
};
beforeAll(() => {
  vitestHandlers = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onUncaught);
});
afterAll(() => {
  process.removeListener('uncaughtException', onUncaught);
  for (const handler of vitestHandlers) process.on('uncaughtException', handler);
});

interface ModelClient {
  readonly raw: RawClient;
  readonly kind: ClientKind;
  connected: boolean;
  localPort: number | undefined;
  requests: number;
  resetByTest: boolean;
}

const EDGES = new Set(['accepting->draining', 'draining->accepting', 'draining->closed']);

class Run {
  readonly server: http.Server;
  listener!: Listener<net.Socket>;
  port = 0;
  readonly clients: ModelClient[] = [];
  /** Server-side connections the listener emitted and that are not closed yet, by the client's port. */
  readonly serverSide = new Map<net.Socket, number | undefined>();
  /**
   * Client ports whose server-side connection may have been destroyed by a
   * force deadline (their client may see a reset): open when the drain's
   * marker fired, or accepted after it while that drain went on.
   */
  readonly forced = new Set<number>();
  /** The marker of the drain under way has fired: its force deadline is due. */
  forceDue = false;
  readonly states: ListenerState[] = ['accepting'];
  /** Connections the listener emitted, in all. */
  accepted = 0;
  closeEvents = 0;
  thrown = 0;
  /** The drain under way: its promise, its force-deadline marker and its bound. */
  current: { promise: Promise<CloseReport>; marker: NodeJS.Timeout; boundMs: number } | undefined;
  readonly outcomes: { outcome: 'resolved' | string; report?: CloseReport }[] = [];
  readonly settling: Promise<void>[] = [];

  constructor() {
    this.server = http.createServer((request, response) => {
      const answer = (): void => {
        response.end('ok');
      };
      const delay = Number(new URL(request.url ?? '/', 'http://localhost').searchParams.get('delay') ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  }

  async open(): Promise<void> {
    this.listener = await listen(this.server, { host: '127.0.0.1', http: { quietWindow: 50, linger: 1000 } });
    this.port = this.listener.address().port;
    this.listener.on('connection', (socket: net.Socket) => {
      this.accepted++;
      this.serverSide.set(socket, socket.remotePort);
      if (this.forceDue && socket.remotePort !== undefined) this.forced.add(socket.remotePort);
      socket.once('close', () => this.serverSide.delete(socket));
    });
    this.listener.on('draining', () => this.states.push('draining'));
    this.listener.on('accepting', () => this.states.push('accepting'));
    this.listener.on('close', () => {
      this.states.push('closed');
      this.closeEvents++;
    });
  }

  /**
   * Starts a drain from the accepting state (`start` calls close() or
   * server.close()) and records it. Its marker is a timer with the force
   * deadline's duration created just before close() creates that deadline:
   * it fires no later than the deadline (Node runs timers of one duration in
   * the order they were created), so every connection the deadline destroys
   * is open when the marker fires or accepted after it.
   */
  beginDrain(options: { timeout: number; forceTimeout: number }, start: () => void): void {
    expect(this.listener.state).toBe('accepting');
    const marker = setTimeout(() => {
      this.forceDue = true;
      for (const clientPort of this.serverSide.values()) if (clientPort !== undefined) this.forced.add(clientPort);
    }, options.timeout + options.forceTimeout);
    this.forceDue = false;
    start();
    const promise = this.listener.close();
    this.current = { promise, marker, boundMs: options.timeout + options.forceTimeout + SETTLE_SLACK_MS };
    const entry: Run['outcomes'][number] = { outcome: 'pending' };
    this.outcomes.push(entry);
    this.settling.push(
      promise.then(
        (report) => {
          entry.outcome = 'resolved';
          entry.report = report;
        },
        (error: unknown) => {
          entry.outcome = codeOf(error) ?? String(error);
        },
      ),
    );
  }

  connect(kind: ClientKind, delay: number): void {
    const raw = RawClient.connect(this.port, { allowHalfOpen: kind === 'stubborn' });
    const client: ModelClient = { raw, kind, connected: false, localPort: undefined, requests: 0, resetByTest: false };
    raw.socket.on('connect', () => {
      client.connected = true;
      client.localPort = raw.socket.localPort;
      if (kind === 'once') {
        raw.socket.write(`GET /?delay=${delay} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        client.requests++;
      } else if (kind !== 'silent') {
        this.request(client, delay);
      }
    });
    this.clients.push(client);
  }

  /** A keep-alive request, only when the previous one was answered: no pipelining. */
  request(client: ModelClient, delay: number): void {
    const { raw } = client;
    if (!client.connected || raw.ended || raw.closed || client.resetByTest) return;
    if (responses(raw) !== client.requests || /connection: close/i.test(raw.data)) return;
    raw.socket.write(rawGet(`/?delay=${delay}`));
    client.requests++;
  }

  reset(client: ModelClient): void {
    if (!client.connected || client.raw.closed || client.resetByTest) return;
    client.resetByTest = true;
    client.raw.socket.resetAndDestroy();
  }

  /** Clients that saw ECONNRESET / EPIPE although neither the test nor a force deadline cut them. */
  unexplainedResets(): string[] {
    return this.clients
      .filter((client) => client.connected && !client.resetByTest)
      .filter((client) => client.raw.errors.some((error) => ['ECONNRESET', 'EPIPE'].includes(codeOf(error) ?? '')))
      .filter((client) => client.localPort === undefined || !this.forced.has(client.localPort))
      .map((client) => `${client.kind} client :${client.localPort} ${client.raw.errors.map((e) => codeOf(e)).join(',')}`);
  }

  async step(a: Action): Promise<void> {
    const { listener } = this;
    const closed = listener.state === 'closed';
    switch (a.kind) {
      case 'connect':
        // After the close the port is free: another process may take it.
        if (!closed) this.connect(a.client, a.delay);
        break;
      case 'request': {
        const candidates = this.clients.filter((client) => client.kind === 'keepAlive' || client.kind === 'stubborn');
        const client = candidates[a.pick % Math.max(candidates.length, 1)];
        if (client !== undefined) this.request(client, a.delay);
        break;
      }
      case 'reset': {
        const candidates = this.clients.filter((client) => client.connected && !client.raw.closed && !client.resetByTest);
        const client = candidates[a.pick % Math.max(candidates.length, 1)];
        if (client !== undefined) this.reset(client);
        break;
      }
      case 'throwIn':
        if (closed) break;
        listener.once(a.event, () => {
          this.thrown++;
          throw new UserBug(`'${a.event}' listener threw`);
        });
        break;
      case 'close': {
        const options = { timeout: a.timeout, forceTimeout: a.forceTimeout };
        let promise: Promise<CloseReport> | undefined;
        if (listener.state === 'accepting') this.beginDrain(options, () => (promise = listener.close(options)));
        // Idempotent: while draining or closed, the promise of the close under
        // way or done, whatever the options; the drain keeps its deadlines.
        else promise = listener.close(options);
        expect(promise).toBe(this.current?.promise);
        break;
      }
      case 'serverClose':
        if (closed) break;
        // Routed to the two-phase close, with the listener's defaults.
        if (listener.state === 'accepting') this.beginDrain(DEFAULT_CLOSE, () => this.server.close(() => {}));
        else this.server.close(() => {});
        // With nothing open it ends at once.
        expect(['draining', 'closed']).toContain(listener.state);
        break;
      case 'pause':
      case 'resume':
        if (closed) {
          expect(() => listener[a.kind]()).toThrow(expect.objectContaining({ code: 'ERR_LISTENER_CLOSED' }));
          break;
        }
        if (a.kind === 'resume' && listener.state === 'draining') {
          clearTimeout(this.current!.marker);
          listener.resume();
          expect(listener.state).toBe('accepting');
          this.current = undefined;
          this.forceDue = false;
        } else {
          listener[a.kind]();
        }
        break;
      case 'sleep':
        await sleep(a.ms);
        break;
    }
    // Let what the action set off on loopback reach the other side.
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
    await this.check();
  }

  async check(): Promise<void> {
    const { listener } = this;
    const closed = listener.state === 'closed';
    expect(this.unexplainedResets()).toEqual([]);
    expect(listener.count).toBe(closed ? 0 : 1 + this.serverSide.size);
    if (closed) expect(this.serverSide.size).toBe(0);
    expect(this.closeEvents).toBe(closed ? 1 : 0);
    for (let i = 1; i < this.states.length; i++) expect(EDGES).toContain(`${this.states[i - 1]}->${this.states[i]}`);
    expect(this.states[this.states.length - 1]).toBe(listener.state);
  }

  /** Drives the listener to 'closed' and everything to its end; checks the close and the clients. */
  async finish(): Promise<void> {
    const { listener } = this;
    if (listener.state === 'accepting') {
      const options = { timeout: 200, forceTimeout: 200 };
      this.beginDrain(options, () => void listener.close(options));
    }
    if (listener.state !== 'closed') {
      // Bounded as the close itself is: server.close() closes with the
      // listener's default deadlines (30 s, then 5 s), past BOUND_MS.
      const closedEvent = nextEvent(listener, 'close', this.current!.boundMs);
      // Settles: resolved by phase 2, by the force deadline at the latest.
      await within(this.current!.promise, 'the last close to settle', this.current!.boundMs);
      await closedEvent;
    }
    await Promise.all(this.settling);
    await this.check();
    expect(listener.state).toBe('closed');
    // Every drain but the last was aborted by resume(); the last resolved.
    const outcomes = this.outcomes.map((entry) => entry.outcome);
    expect(outcomes.slice(0, -1).every((outcome) => outcome === 'ERR_CLOSE_ABORTED')).toBe(true);
    expect(outcomes[outcomes.length - 1]).toBe('resolved');
    const report = this.outcomes[this.outcomes.length - 1]!.report!;
    expect(report.served + report.ended).toBe(report.openAtClose + report.accepted);
    expect(report.destroyed).toBeLessThanOrEqual(report.ended);
    expect(report.queueLost).toBe(0);
    // Each throwing listener that ran was reported once, on its own tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(reportedBugs).toBe(this.thrown);

    // Every client comes to an end: answered and closed, refused, cut by a
    // deadline, or reset by the test. A SYN the gate dropped is retransmitted
    // (1 s, 3 s) and then refused: the bound allows for that. A stubborn
    // client has had the server's FIN (every server-side socket is closed):
    // it now sends its own.
    for (const client of this.clients) if (client.kind === 'stubborn') client.raw.socket.end();
    await waitFor(
      () => `every client to close (${this.clients.filter((client) => !client.raw.closed).length} open)`,
      () => this.clients.every((client) => client.raw.closed),
      { tries: 500, intervalMs: 20 },
    );
    expect(this.unexplainedResets()).toEqual([]);
    for (const client of this.clients) {
      const codes = client.raw.errors.map((error) => codeOf(error) ?? error.message);
      if (client.connected) {
        expect(codes.filter((code) => !['ECONNRESET', 'EPIPE'].includes(code))).toEqual([]);
        // A one-shot client is answered or cut: never a second answer, never garbage.
        expect(responses(client.raw)).toBeLessThanOrEqual(client.requests);
      } else {
        expect(codes.every((code) => code === 'ECONNREFUSED' || code === 'ETIMEDOUT')).toBe(true);
      }
    }
  }

  destroy(): void {
    for (const client of this.clients) client.raw.destroy();
    if (this.listener !== undefined && this.listener.state !== 'closed') {
      if (this.listener.state === 'draining') this.listener.resume();
      this.listener.close({ timeout: 0, forceTimeout: 0 }).catch(() => {});
    }
  }
}

function responses(raw: RawClient): number {
  return raw.data.split('HTTP/1.1 ').length - 1;
}

let running: Run | undefined;
afterEach(() => running?.destroy());

test('random connect / request / reset / throw / close / server.close / pause / resume sequences on loopback keep the invariants', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ client: clientKind, delay: handlerDelay }), { maxLength: 4 }),
      fc.array(action, { minLength: MAX_ACTIONS / 2, maxLength: MAX_ACTIONS }),
      async (first, actions) => {
        const before = openFdTargets();
        reportedBugs = 0;
        const run = new Run();
        running = run;
        try {
          await run.open();
          // Connections open before the random actions, so that drains have work.
          for (const { client, delay } of first) run.connect(client, delay);
          await waitFor('the first clients to be accepted', () => run.accepted === first.length);
          await run.check();
          for (const a of actions) await run.step(a);
          await run.finish();
        } catch (error) {
          run.destroy();
          throw error;
        }
        running = undefined;
        // Client sockets close asynchronously: wait for their fds to go.
        await fdsBackTo(before, 'the fds of the run to be closed', { tries: 250, intervalMs: 20 });
      },
    ),
    {
      numRuns: RUNS,
      // Each run is real sockets and real time: report the first failure
      // with its seed and path instead of shrinking for minutes.
      endOnFailure: true,
      ...(process.env.SEED !== undefined ? { seed: Number(process.env.SEED), path: process.env.FC_PATH } : {}),
    },
  );
}, 180_000);
