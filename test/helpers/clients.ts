// Loopback clients and what they saw: a raw socket that records everything,
// one HTTP request on a fresh connection, keep-alive request loops, and the
// certificate every TLS test uses.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { selfSignedCertificate, type KeyPair } from '../../src/testing/index.js';
import { BOUND_MS, HANG_SCALE, nextEvent, when } from './wait.js';

export const HOST = '127.0.0.1';

let pair: KeyPair | undefined;

/** The package's selfSignedCertificate() (localhost, 127.0.0.1, ::1), made once per process. */
export function certificate(): KeyPair {
  pair ??= selfSignedCertificate();
  return pair;
}

/** The error code a socket operation ended with, or undefined. */
export function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

export interface ConnectOptions {
  /** @default HOST */
  host?: string;
  /** TLS, trusting certificate() for 'localhost'. */
  secure?: boolean;
  allowHalfOpen?: boolean;
  /** Written as soon as the connection is up. */
  greeting?: string;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A raw client socket with everything that happened to it recorded. */
export class RawClient {
  readonly socket: net.Socket;
  connected = false;
  data = '';
  readonly errors: Error[] = [];
  ended = false;
  closed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('connect', () => (this.connected = true));
    socket.on('data', (chunk: string) => (this.data += chunk));
    socket.on('error', (error) => this.errors.push(error));
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
  }

  static connect(port: number, { host = HOST, secure = false, allowHalfOpen, greeting }: ConnectOptions = {}): RawClient {
    const socket = secure
      ? tls.connect({ host, port, ca: certificate().cert, servername: 'localhost' })
      : net.connect({ host, port, ...(allowHalfOpen !== undefined ? { allowHalfOpen } : {}) });
    const client = new RawClient(socket);
    if (greeting !== undefined) socket.once('connect', () => socket.write(greeting));
    return client;
  }

  /** Resolves once `check` holds on what was received (or the socket closed). */
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

  /** The server's FIN, then ours: the server closed first, cleanly both ways. */
  async endAfterServer(): Promise<void> {
    await this.finished();
    this.socket.end();
  }

  /** Our FIN, then the server's: the client leaves first. */
  async endFirst(): Promise<void> {
    this.socket.end();
    await this.finished();
  }

  destroy(): void {
    this.socket.destroy();
  }
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

/** Reads from each socket until `expected` characters arrived; resolves with what each one sent. */
export function readEach(sockets: net.Socket[], expected: number): Promise<string[]> {
  return Promise.all(
    sockets.map(
      (socket) =>
        new Promise<string>((resolve, reject) => {
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => {
            text += chunk;
            if (text.length >= expected) resolve(text);
          });
          socket.on('error', reject);
          socket.on('close', () => reject(new Error(`socket closed after ${JSON.stringify(text)}`)));
        }),
    ),
  );
}

export interface Reply {
  status: number;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request on a fresh connection (`agent: false`, so `Connection: close`);
 * resolves when the response ended and the socket closed.
 */
export function request(
  port: number,
  options: { secure?: boolean; path?: string; servername?: string } & http.RequestOptions = {},
): Promise<Reply> {
  const { secure = false, path = '/', ...rest } = options;
  const client = secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        host: HOST,
        port,
        path,
        agent: false,
        rejectUnauthorized: false,
        ...rest,
        signal: AbortSignal.timeout(BOUND_MS * HANG_SCALE),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('error', reject);
        res.on('end', () => {
          const reply = { status: res.statusCode ?? 0, httpVersion: res.httpVersion, headers: res.headers, body };
          if (res.socket.closed) resolve(reply);
          else res.socket.once('close', () => resolve(reply));
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
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

/** `server.getConnections()` as a promise. */
export function connections(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

/** Listens with Node's own `server.listen()` on an ephemeral loopback port. */
export async function nodeListen<S extends net.Server>(server: S, backlog?: number): Promise<number> {
  server.listen({ host: HOST, port: 0, ...(backlog !== undefined ? { backlog } : {}) });
  await nextEvent(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

// Ports bind(0) and connect() never pick on their own: the kernel takes
// those from net.ipv4.ip_local_port_range.
function ephemeralLow(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768;
  }
}

/**
 * A free loopback port below the ephemeral range, for a test that closes a
 * listener and binds the same port again under load: a port from bind(0) is
 * one a client's connect() may take as its own local port in between (any
 * other test's client, or a client of this test connecting to itself, TCP's
 * self-connect), and the bind then fails with EADDRINUSE.
 */
export async function stablePort(host = HOST): Promise<number> {
  const high = Math.min(ephemeralLow(), 65536) - 1;
  const low = Math.max(1024, high - 12_000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    const probe = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${low}-${high} on ${host}`);
}
