import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';

/** Options of the HTTP/2 drain. */
export interface Http2DrainOptions {
  /**
   * Milliseconds to wait for the PING acknowledgement (one round trip) before
   * the final GOAWAY is sent anyway.
   * @default 1000
   */
  pingTimeout?: number;
}

/** What the HTTP/2 drain did, for the close report. */
export interface Http2DrainStats {
  /** Sessions sent the graceful GOAWAY pair. */
  sessions: number;
}

const ANNOUNCE_LAST_STREAM_ID = 2 ** 31 - 1;
const DEFAULT_PING_TIMEOUT_MS = 1000;

interface Session {
  readonly socket: net.Socket;
  streams: number;
  final: boolean;
}

/**
 * HTTP/2 in draining mode, per RFC 9113 §6.8: each session first gets a
 * GOAWAY with last-stream-id 2^31−1 and a PING; after the PING's round trip
 * the final GOAWAY carries the real last stream id (Node fills in the last
 * stream it processed). Streams in flight complete; then the connection is
 * ended with FIN. Ending the socket ourselves, before Node destroys the
 * session, keeps Node from adding a third, terminating GOAWAY.
 *
 * One owner per session: the draining flag and the snapshot of sessions are
 * taken in one synchronous step (`start()`), and a session that registers
 * after it — a straggler whose TLS handshake finished late — is drained by the
 * registration path. A WeakSet makes a second GOAWAY pair impossible.
 */
export class Http2Drain {
  readonly #server: net.Server;
  readonly #pingTimeout: number;
  readonly #sessions = new Map<http2.ServerHttp2Session, Session>();
  readonly #drained = new WeakSet<http2.ServerHttp2Session>();
  readonly #stats: Http2DrainStats = { sessions: 0 };
  #draining = false;
  // Node creates a session synchronously inside its connection listener and
  // emits 'session' from there: the socket seen last is the session's.
  #lastSocket: net.Socket | undefined;

  readonly #onConnection = (socket: net.Socket): void => {
    this.#lastSocket = socket;
  };

  readonly #onSession = (session: http2.ServerHttp2Session): void => {
    const socket = this.#lastSocket;
    this.#lastSocket = undefined;
    if (socket === undefined) return;
    const entry: Session = { socket, streams: 0, final: false };
    this.#sessions.set(session, entry);
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      entry.streams++;
      stream.once('close', () => {
        entry.streams--;
        this.#maybeEnd(entry);
      });
    });
    session.once('close', () => this.#sessions.delete(session));
    if (this.#draining) this.#goaway(session, entry);
  };

  constructor(server: net.Server, options: Http2DrainOptions = {}) {
    this.#server = server;
    this.#pingTimeout = options.pingTimeout ?? DEFAULT_PING_TIMEOUT_MS;
    server.prependListener(this.#connectionEvent, this.#onConnection);
    server.prependListener('session', this.#onSession);
  }

  get #connectionEvent(): string {
    return this.#server instanceof tls.Server ? 'secureConnection' : 'connection';
  }

  get stats(): Http2DrainStats {
    return { ...this.#stats };
  }

  start(): void {
    this.#draining = true;
    for (const [session, entry] of this.#sessions) this.#goaway(session, entry);
  }

  /** A drain aborted by `resume()`: sessions already told to go away stay so. */
  stop(): void {
    this.#draining = false;
  }

  dispose(): void {
    this.#draining = false;
    this.#server.removeListener(this.#connectionEvent, this.#onConnection);
    this.#server.removeListener('session', this.#onSession);
  }

  #goaway(session: http2.ServerHttp2Session, entry: Session): void {
    if (this.#drained.has(session) || session.closed || session.destroyed) return;
    this.#drained.add(session);
    this.#stats.sessions++;
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, ANNOUNCE_LAST_STREAM_ID);
    let sent = false;
    const final = (): void => {
      if (sent) return;
      sent = true;
      clearTimeout(timer);
      if (session.closed || session.destroyed) return;
      // close() sends it and marks the session closed, so the GOAWAY a
      // client answers with does not make Node send one more.
      session.close();
      entry.final = true;
      this.#maybeEnd(entry);
    };
    const timer = setTimeout(final, this.#pingTimeout);
    if (!session.ping(final)) final();
  }

  // FIN once the final GOAWAY is out and the last stream is done; Node keeps
  // reading until the peer closes, so nothing unread can turn it into RST.
  #maybeEnd(entry: Session): void {
    if (entry.final && entry.streams === 0 && !entry.socket.destroyed) entry.socket.end();
  }
}
