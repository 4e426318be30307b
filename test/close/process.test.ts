// Process-level lifecycle: a child process whose SIGTERM handler closes a
// real listener gets the signal at each stage of the close — accepting and
// idle, with connections open (an idle keep-alive one, a request in flight),
// and again in phase 2 — and must exit by itself with code 0, no client
// reset, the port refusing afterwards. A worker thread that owns a listener
// is terminated in the middle of a drain. (A forgotten, never-closed socket
// under --expose-gc is test/native/lifecycle.test.ts's 'garbage collection'
// test: collected when disarmed, kept alive while armed — what a listener
// from listen() is — and closed by the environment cleanup hook at exit.)
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { Lines, Opened, anyFdPointsTo, nextEvent, rawGet, requireDist, waitFor, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const CHILD = path.join(__dirname, '..', 'helpers', 'sigterm-child.mjs');

interface ChildEvent {
  event: 'listening' | 'request' | 'signal' | 'draining' | 'closed' | 'uncaught';
  port?: number;
  url?: string;
  state?: string;
  same?: boolean | null;
  report?: { openAtClose: number; served: number; ended: number; destroyed: number; accepted: number };
  message?: string;
}

/** The child, its events as they arrive, and its exit. */
class SigtermChild {
  readonly process: ChildProcess;
  readonly #events: Lines<ChildEvent>;
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor() {
    this.process = opened.child(spawn(process.execPath, [CHILD, requireDist()], { stdio: ['pipe', 'pipe', 'pipe'] }));
    this.#events = new Lines(this.process.stdout!, (line) => JSON.parse(line) as ChildEvent);
    this.process.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.process.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves with the first event matching, waiting for it (bounded). */
  next(match: (event: ChildEvent) => boolean, what: string): Promise<ChildEvent> {
    return this.#events.find(match, () => `the child's ${what} (events: ${JSON.stringify(this.#events.items)}, stderr: ${this.stderr})`);
  }

  async port(): Promise<number> {
    return (await this.next((event) => event.event === 'listening', "'listening'")).port!;
  }

  sigterm(): void {
    this.process.kill('SIGTERM');
  }

  release(): void {
    this.process.stdin!.write('release\n');
  }

  /** The exit, bounded: a child the close left alive is killed and fails the test. */
  async exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const bound = setTimeout(() => this.process.kill('SIGKILL'), 20_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(bound);
    }
  }

  of(kind: ChildEvent['event']): ChildEvent[] {
    return this.#events.items.filter((event) => event.event === kind);
  }
}

/** A keep-alive client that has been answered once and now sits idle on its connection. */
async function idleKeepAlive(port: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(rawGet('/'));
  const response = await client.response();
  expect(response).toMatchObject({ status: 200, headers: { connection: 'keep-alive' } });
  return client;
}

/** A client whose request to /hold is in flight until the child is told to release it. */
async function heldRequest(child: SigtermChild, port: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(rawGet('/hold'));
  await child.next((event) => event.event === 'request' && event.url === '/hold', "request for /hold");
  return client;
}

describe('SIGTERM at each stage of the close: the child exits by itself, code 0, nobody reset', () => {
  test('accepting and idle', async () => {
    const child = new SigtermChild();
    const port = await child.port();
    child.sigterm();
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    expect(child.of('uncaught')).toEqual([]);
    expect(child.of('signal')).toEqual([{ event: 'signal', state: 'accepting', same: null }]);
    expect(child.of('closed')[0]!.report).toMatchObject({ openAtClose: 0, accepted: 0, served: 0, ended: 0, destroyed: 0 });
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
  });

  test('with an idle keep-alive connection and a request in flight: the request is answered with Connection: close, the idle one gets a FIN', async () => {
    const child = new SigtermChild();
    const port = await child.port();
    const idle = await idleKeepAlive(port);
    const inFlight = await heldRequest(child, port);
    child.sigterm();
    await child.next((event) => event.event === 'draining', "'draining'");
    // The idle connection is ended after the quiet window; the request is still held.
    await idle.finished();
    expect(idle.errors).toEqual([]);
    expect(child.of('closed')).toEqual([]);
    child.release();
    const response = await inFlight.response();
    expect(response).toMatchObject({ status: 200, body: 'released', headers: { connection: 'close' } });
    await inFlight.finished();
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    expect(inFlight.errors).toEqual([]);
    expect(child.of('uncaught')).toEqual([]);
    expect(child.of('closed')[0]!.report).toMatchObject({ openAtClose: 2, served: 2, ended: 0, destroyed: 0 });
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
  });

  test('again in phase 2 (the socket shut down, one request still in flight): the second SIGTERM gets the same close, the child still waits for the request', async () => {
    const child = new SigtermChild();
    const port = await child.port();
    const inFlight = await heldRequest(child, port);
    child.sigterm();
    await child.next((event) => event.event === 'draining', "'draining'");
    // Phase 1 is over: the socket is shut down (new clients are refused at
    // once), the fd stays open for the connection still in flight.
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
    child.sigterm();
    await waitFor('the second signal', () => child.of('signal').length === 2);
    expect(child.of('signal')).toEqual([
      { event: 'signal', state: 'accepting', same: null },
      { event: 'signal', state: 'draining', same: true },
    ]);
    expect(child.process.exitCode).toBeNull();
    child.release();
    const response = await inFlight.response();
    expect(response).toMatchObject({ status: 200, body: 'released', headers: { connection: 'close' } });
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    expect(inFlight.errors).toEqual([]);
    expect(child.of('uncaught')).toEqual([]);
    expect(child.of('closed')).toHaveLength(1);
    expect(child.of('closed')[0]!.report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
  });
});

// Opens a listener for an http server in the worker, reports its port and
// the socket its fd points to; on 'close' from the parent starts a drain
// with long deadlines and reports 'draining'.
const WORKER = `
const fs = require('node:fs');
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { listen } = require(workerData.dist);
(async () => {
  const server = http.createServer((request, response) => response.end('ok'));
  const listener = await listen(server, { host: '127.0.0.1', http: { quietWindow: 60000 } });
  listener.on('draining', () => parentPort.postMessage({ draining: listener.state, count: listener.count }));
  parentPort.on('message', () => listener.close({ timeout: 60000 }));
  parentPort.postMessage({ port: listener.address().port, link: fs.readlinkSync('/proc/self/fd/' + listener.fd) });
})();
`;

describe('a worker thread that owns a listener', () => {
  test('terminated in the middle of a drain: no crash, its fds are closed, the port is free again', async () => {
    const worker = new Worker(WORKER, { eval: true, workerData: { dist: requireDist() } });
    const errors: Error[] = [];
    worker.on('error', (error) => errors.push(error));
    const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
    const messages: { port?: number; link?: string; draining?: string; count?: number }[] = [];
    worker.on('message', (message: (typeof messages)[number]) => messages.push(message));
    await waitFor('the worker to listen', () => messages.length > 0);
    const { port, link } = messages[0]!;
    expect(link).toMatch(/^socket:\[\d+\]$/);
    expect(anyFdPointsTo(link!)).toBe(true);

    // An idle keep-alive connection holds the drain (its quiet window is a minute).
    const idle = await idleKeepAlive(port!);
    worker.postMessage('close');
    await waitFor("the worker's drain", () => messages.some((message) => message.draining !== undefined));
    expect(messages.find((message) => message.draining !== undefined)).toEqual({ draining: 'draining', count: 2 });

    await worker.terminate();
    expect(await exited).toBe(1);
    expect(errors).toEqual([]);
    // The environment's teardown closed the listening socket and the connection.
    expect(anyFdPointsTo(link!)).toBe(false);
    await idle.finished();
    // The port can be bound again by someone else.
    const rebind = opened.server(net.createServer());
    rebind.listen(port, '127.0.0.1');
    await nextEvent(rebind, 'listening');
    rebind.close();
    await nextEvent(rebind, 'close');
  });
});
