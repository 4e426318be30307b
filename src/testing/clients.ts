// One request at a time per slot, with Node's own http, https and http2
// clients. A request never rejects: it settles to a status or to the error
// that ended it, together with the connection's own error (which carries the
// syscall when the request's does not).
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import type { Target } from './target.js';

export interface RawOutcome {
  status?: number;
  error?: unknown;
  socketError?: unknown;
}

interface ClientConfig {
  protocol: 'http1' | 'h2';
  connection: 'new' | 'keep-alive';
  concurrency: number;
  method: string;
  headers: Record<string, string>;
  requestTimeout: number;
  ca: string | Buffer | undefined;
  rejectUnauthorized: boolean;
}

interface LoadClient {
  request(slot: number): Promise<RawOutcome>;
  /** Closes every connection the client keeps (keep-alive sockets, HTTP/2 sessions). */
  close(): void;
}

function timeoutError(ms: number): Error {
  return Object.assign(new Error(`No response within ${ms} ms`), { code: 'ERR_LOAD_TIMEOUT' });
}

function tlsOptions(target: Target, config: ClientConfig): Record<string, unknown> {
  if (!target.secure) return {};
  return {
    rejectUnauthorized: config.rejectUnauthorized,
    ...(config.ca !== undefined ? { ca: config.ca } : {}),
    ...(target.servername !== undefined ? { servername: target.servername } : {}),
  };
}

export function createClient(target: Target, config: ClientConfig): LoadClient {
  return config.protocol === 'h2' ? new Http2Client(target, config) : new Http1Client(target, config);
}

class Http1Client implements LoadClient {
  readonly #target: Target;
  readonly #config: ClientConfig;
  readonly #agent: http.Agent | false;
  readonly #path: string;

  constructor(target: Target, config: ClientConfig) {
    this.#target = target;
    this.#config = config;
    this.#path = `${target.url.pathname}${target.url.search}`;
    const Agent = target.secure ? https.Agent : http.Agent;
    // 'new': agent false, a fresh connection (and TLS handshake) per request.
    this.#agent =
      config.connection === 'keep-alive'
        ? new Agent({ keepAlive: true, maxSockets: config.concurrency, maxFreeSockets: config.concurrency })
        : false;
  }

  request(): Promise<RawOutcome> {
    const target = this.#target;
    const config = this.#config;
    return new Promise((resolve) => {
      let socket: net.Socket | undefined;
      let socketError: unknown;
      let settled = false;
      const onSocketError = (error: unknown): void => {
        socketError ??= error;
      };
      const finish = (outcome: RawOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.removeListener('error', onSocketError);
        resolve({ ...outcome, socketError });
      };
      const request = (target.secure ? https : http).request({
        host: target.address,
        family: target.family,
        port: target.port,
        path: this.#path,
        method: config.method,
        headers: {
          host: target.authority,
          ...(config.connection === 'new' ? { connection: 'close' } : {}),
          ...config.headers,
        },
        agent: this.#agent,
        ...tlsOptions(target, config),
      });
      const timer = setTimeout(() => request.destroy(timeoutError(config.requestTimeout)), config.requestTimeout);
      request.on('socket', (s: net.Socket) => {
        socket = s;
        s.on('error', onSocketError);
      });
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => finish({ status: response.statusCode ?? 0 }));
        response.on('error', (error) => finish({ error }));
        response.on('close', () => {
          if (!response.complete) finish({ error: Object.assign(new Error('aborted'), { code: 'ECONNRESET' }) });
        });
      });
      request.on('error', (error) => finish({ error }));
      request.end();
    });
  }

  close(): void {
    if (this.#agent !== false) this.#agent.destroy();
  }
}

interface Slot {
  session: http2.ClientHttp2Session;
  usable: boolean;
  /** The session's 'connect' came: TLS and the HTTP/2 preface are done. */
  connected: boolean;
  error: unknown;
}

// RFC 9113 §7 error codes, by value.
const H2_ERROR_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
  'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

// A stream that closed without a complete response and without an 'error'
// event: described the way Node describes stream errors, so that
// classifyError sees REFUSED_STREAM (safe to retry) for what it is.
function streamClosed(stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session): Error {
  const code = stream.rstCode ?? http2.constants.NGHTTP2_NO_ERROR;
  // Node closes the streams of a session it tears down with CANCEL (or
  // INTERNAL_ERROR): that is the connection closing, not the server's RST_STREAM.
  const torn = code === http2.constants.NGHTTP2_CANCEL || code === http2.constants.NGHTTP2_INTERNAL_ERROR;
  if (code === http2.constants.NGHTTP2_NO_ERROR || (torn && session.destroyed)) {
    return Object.assign(new Error(`The stream closed without a response (code ${code})`), { code: 'H2_SESSION_CLOSED' });
  }
  const name = H2_ERROR_NAMES[code] ?? String(code);
  return Object.assign(new Error(`Stream closed with error code NGHTTP2_${name}`), { code: 'ERR_HTTP2_STREAM_ERROR' });
}

const NEVER_SENT = 'The connection closed before the HTTP/2 session was established; the stream was never sent';

// A stream cancelled or closed with nothing to say why (no cause, no system error).
function isBareCancel(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  return (code === 'ERR_HTTP2_STREAM_CANCEL' || code === 'H2_SESSION_CLOSED') && cause === undefined;
}

class Http2Client implements LoadClient {
  readonly #target: Target;
  readonly #config: ClientConfig;
  readonly #origin: string;
  readonly #slots: (Slot | undefined)[] = [];
  readonly #sessions = new Set<http2.ClientHttp2Session>();

  constructor(target: Target, config: ClientConfig) {
    this.#target = target;
    this.#config = config;
    const host = target.family === 6 ? `[${target.address}]` : target.address;
    this.#origin = `${target.secure ? 'https' : 'http'}://${host}:${target.port}`;
  }

  #connect(): Slot {
    const session = http2.connect(this.#origin, tlsOptions(this.#target, this.#config));
    const slot: Slot = { session, usable: true, connected: false, error: undefined };
    this.#sessions.add(session);
    session.once('connect', () => (slot.connected = true));
    session.on('error', (error) => {
      slot.error ??= error;
      slot.usable = false;
    });
    // After GOAWAY the session takes no new stream: the next request opens another session.
    session.on('goaway', () => (slot.usable = false));
    session.on('close', () => {
      slot.usable = false;
      this.#sessions.delete(session);
    });
    return slot;
  }

  request(index: number): Promise<RawOutcome> {
    const config = this.#config;
    let slot: Slot;
    if (config.connection === 'new') {
      slot = this.#connect();
    } else {
      const kept = this.#slots[index];
      slot = kept !== undefined && kept.usable && !kept.session.destroyed ? kept : this.#connect();
      this.#slots[index] = slot;
    }
    return new Promise((resolve) => {
      let settled = false;
      let status = 0;
      const finish = (outcome: RawOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!slot.connected && slot.error === undefined && isBareCancel(outcome.error)) {
          // Closed (not reset: no system error) before TLS and the session were up.
          outcome = { error: Object.assign(new Error(NEVER_SENT), { code: 'H2_CLOSED_BEFORE_SESSION' }) };
        }
        if (config.connection === 'new') {
          if (outcome.error === undefined) slot.session.close();
          else slot.session.destroy();
        }
        resolve({ ...outcome, socketError: slot.error });
      };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = slot.session.request({
          ':method': config.method,
          ':path': `${this.#target.url.pathname}${this.#target.url.search}`,
          ':authority': this.#target.authority,
          ...config.headers,
        });
      } catch (error) {
        // A session that received GOAWAY or was destroyed refuses new streams synchronously.
        slot.usable = false;
        settled = true;
        if (config.connection === 'new') slot.session.destroy();
        resolve({ error, socketError: slot.error });
        return;
      }
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish({ error: timeoutError(config.requestTimeout) });
      }, config.requestTimeout);
      stream.on('response', (headers) => {
        status = Number(headers[':status'] ?? 0);
      });
      stream.resume();
      stream.on('end', () => finish(status > 0 ? { status } : { error: streamClosed(stream, slot.session) }));
      stream.on('error', (error) => finish({ error }));
      stream.on('close', () => {
        if (status > 0 && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) finish({ status });
        // An 'error' may follow 'close': the stream already holds it.
        else finish({ error: stream.errored ?? streamClosed(stream, slot.session) });
      });
      stream.end();
    });
  }

  close(): void {
    for (const session of this.#sessions) {
      // close() lets streams finish and sends GOAWAY; nothing is in flight by now.
      session.close();
      setTimeout(() => session.destroy(), 1000).unref();
    }
    this.#slots.length = 0;
  }
}
