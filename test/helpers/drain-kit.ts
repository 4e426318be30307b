// Shared by test/drain: a registry of what a test opened (afterEach closes it
// and awaits every listener's 'close'), hang bounds for event waits, the TLS
// certificate, and HTTP/1.1 clients that record how each request ended.
// Every bound is a hang guard, never a timing assertion.
import { once } from 'node:events';
import type { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { CloseReport, Listener } from '../../src/index.js';
import { makeCerts, type KeyPair } from './certs.js';

export const HOST = '127.0.0.1';
/** A hang bound for one wait, far above what any wait needs. */
export const BOUND_MS = 20_000;

/** `promise`, or a rejection naming `what` once `boundMs` passed. */
export function within<T>(promise: Promise<T>, what: string, boundMs = BOUND_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), boundMs);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** The next `event` of `emitter`, bounded. */
export function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string): Promise<T> {
  return once(emitter, event, { signal: AbortSignal.timeout(BOUND_MS) }) as Promise<T>;
}

/**
 * A promise that resolves once `check` holds, tested each time `emitter`
 * emits one of `events` (and once now): event-driven, bounded.
 */
export function when(emitter: EventEmitter, events: string[], check: () => boolean, what: string): Promise<void> {
  if (check()) return Promise.resolve();
  return within(
    new Promise<void>((resolve) => {
      const test = (): void => {
        if (!check()) return;
        for (const event of events) emitter.removeListener(event, test);
        resolve();
      };
      for (const event of events) emitter.on(event, test);
    }),
    what,
  );
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

interface Destroyable {
  destroy(): unknown;
}

/** Everything a test opens; `dispose()` (afterEach) destroys clients and awaits each listener's 'close'. */
export class DrainScope {
  readonly #listeners = new Map<Listener<net.Socket>, Promise<void>>();
  readonly #things = new Set<Destroyable>();

  listener<L extends Listener<net.Socket>>(listener: L): L {
    this.#listeners.set(
      listener,
      listener.state === 'closed' ? Promise.resolve() : new Promise((resolve) => listener.once('close', () => resolve())),
    );
    return listener;
  }

  track<T extends Destroyable>(thing: T): T {
    this.#things.add(thing);
    return thing;
  }

  /** The listener's 'close' event (bounded). */
  closed(listener: Listener<net.Socket>): Promise<void> {
    const closed = this.#listeners.get(listener);
    if (closed === undefined) throw new Error('listener not registered');
    return within(closed, "the listener's 'close'");
  }

  /** close() and the listener's 'close' event, together. */
  async close(listener: Listener<net.Socket>, options?: Parameters<Listener['close']>[0]): Promise<CloseReport> {
    const report = await within(listener.close(options), 'close() to resolve');
    await this.closed(listener);
    return report;
  }

  async dispose(): Promise<void> {
    for (const thing of this.#things) thing.destroy();
    this.#things.clear();
    // Forgotten first, so one listener that never closes fails this test only.
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const [listener] of listeners) {
      if (listener.state === 'accepting') listener.close({ timeout: 0, forceTimeout: 0 }).catch(() => {});
    }
    await within(Promise.all(listeners.map(([, closed]) => closed)), "every listener's 'close' in afterEach");
  }
}

let pair: KeyPair | undefined;

/** A self-signed certificate for localhost and 127.0.0.1 (test/helpers/certs), made once per file. */
export function drainCertificate(): KeyPair {
  pair ??= makeCerts(['localhost']).get('localhost')!;
  return pair;
}

/** The protocol part of a close report, typed for the assertions. */
export interface ProtocolReport {
  http?: { closedAfterResponse: number; endedIdle: number };
  http2?: { sessions: number };
  drainHooks: number;
}

export function protocolOf(report: CloseReport): ProtocolReport {
  if (report.protocol === undefined) throw new Error('the close report has no protocol figures');
  return report.protocol as unknown as ProtocolReport;
}

/** How one HTTP/1.1 request ended, as the client saw it. */
export interface Exchange {
  ok: boolean;
  status?: number;
  headers?: http.IncomingHttpHeaders;
  body?: string;
  /** The error's code (or message, without one) when it failed. */
  failure?: string;
  /** The agent gave it a keep-alive socket used before (`req.reusedSocket`). */
  reusedSocket: boolean;
  /** The request was written to a connected socket ('finish' fired). */
  written: boolean;
}

/** Runs a ClientRequest to its end and records it; never rejects. */
export function exchange(request: http.ClientRequest): Promise<Exchange> {
  return new Promise((resolve) => {
    let written = false;
    request.on('finish', () => (written = true));
    request.on('response', (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({
          ok: true,
          status: response.statusCode,
          headers: response.headers,
          body,
          reusedSocket: request.reusedSocket,
          written,
        }),
      );
      response.on('error', (error: NodeJS.ErrnoException) =>
        resolve({ ok: false, failure: error.code ?? error.message, reusedSocket: request.reusedSocket, written }),
      );
    });
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ ok: false, failure: error.code ?? error.message, reusedSocket: request.reusedSocket, written }),
    );
    request.end();
  });
}

/**
 * `loops` clients, each sending requests one after the other (`send` makes
 * one) until one fails or `maxPerLoop` were sent. `onExchange` sees each
 * outcome as it arrives. Resolves with every outcome.
 */
export async function requestLoops(options: {
  loops: number;
  maxPerLoop: number;
  send: () => http.ClientRequest;
  onExchange?: (outcome: Exchange) => void;
}): Promise<Exchange[]> {
  const outcomes: Exchange[] = [];
  const loop = async (): Promise<void> => {
    for (let i = 0; i < options.maxPerLoop; i++) {
      const outcome = await exchange(options.send());
      outcomes.push(outcome);
      options.onExchange?.(outcome);
      if (!outcome.ok) return;
    }
  };
  await Promise.all(Array.from({ length: options.loops }, loop));
  return outcomes;
}

/** A raw client socket with everything that happened to it recorded. */
export class RawClient {
  readonly socket: net.Socket;
  data = '';
  readonly errors: Error[] = [];
  ended = false;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (this.data += chunk));
    socket.on('error', (error) => this.errors.push(error));
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
  }

  static connect(port: number, secure = false): RawClient {
    const socket = secure
      ? tls.connect({ host: HOST, port, ca: drainCertificate().cert, servername: 'localhost' })
      : net.connect({ host: HOST, port });
    return new RawClient(socket);
  }

  /** Resolves once `check` holds on what was received (or the socket ended). */
  until(check: (client: RawClient) => boolean, what: string): Promise<void> {
    return when(this.socket, ['data', 'end', 'close'], () => check(this) || this.closed, what);
  }

  /** The next complete response (Content-Length framed), removed from `data`. */
  async response(): Promise<RawResponse> {
    await this.until((client) => parseResponse(client.data) !== undefined, 'a complete response');
    const parsed = parseResponse(this.data);
    if (parsed === undefined) throw new Error(`no complete response before the socket closed: ${JSON.stringify(this.data)}`);
    this.data = this.data.slice(parsed.length);
    return parsed.response;
  }

  /** Resolves at 'end' (FIN) or 'close', whichever comes first. */
  finished(): Promise<void> {
    return this.until((client) => client.ended, "the server's FIN");
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parseResponse(text: string): { response: RawResponse; length: number } | undefined {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine = '', ...lines] = text.slice(0, headEnd).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyLength = Number(headers['content-length'] ?? 0);
  if (text.length < headEnd + 4 + bodyLength) return undefined;
  return {
    response: { status: Number(statusLine.split(' ')[1]), headers, body: text.slice(headEnd + 4, headEnd + 4 + bodyLength) },
    length: headEnd + 4 + bodyLength,
  };
}

/** A keep-alive GET as raw bytes. */
export function rawGet(path = '/', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n${extra}\r\n`;
}
