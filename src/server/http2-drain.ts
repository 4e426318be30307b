import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';

/** Options of the HTTP/2 drain. */
export interface Http2DrainOptions {
  /**
   * Milliseconds to wait for the PING acknowledgements (two round trips)
   * before the final GOAWAY is sent anyway.
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
  /** Streams open now. */
  streams: number;
  /** Streams ever opened. */
  opened: number;
  /**
   * `announced`: the first GOAWAY is out; `finishing`: the final one is about
   * to be sent; `final`: it is sent, FIN follows the last stream.
   */
  phase: 'open' | 'announced' | 'finishing' | 'final';
  /** Sends the final GOAWAY; set with `announced`. */
  finish: (() => void) | undefined;
}

/**
 * HTTP/2 in draining mode, per RFC 9113 §6.8: each session first gets a
 * GOAWAY with last-stream-id 2^31−1 and a PING; after the PING round trips
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
    // A session on a connection the server has of its own is not this drain's.
    this.#lastSocket = this.#owns(socket) ? socket : undefined;
  };

  readonly #onSession = (session: http2.ServerHttp2Session): void => {
    const socket = this.#lastSocket;
    this.#lastSocket = undefined;
    if (socket === undefined) return;
    const entry: Session = { socket, streams: 0, opened: 0, phase: 'open', finish: undefined };
    this.#sessions.set(session, entry);
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      entry.streams++;
      entry.opened++;
      stream.once('close', () => {
        entry.streams--;
        if (entry.streams > 0 || entry.phase === 'open' || entry.phase === 'finishing') return;
        // Node closed the session itself if the client answered our GOAWAY
        // with its own: that close() sent the final GOAWAY. FIN now, before
        // Node's deferred destroy adds a terminating one.
        if (entry.phase === 'final' || session.closed) {
          entry.phase = 'final';
          this.#maybeEnd(entry);
        } else {
          // The PING ACKs will not be read now (see #announce).
          entry.finish?.();
        }
      });
    });
    session.once('close', () => this.#sessions.delete(session));
    if (this.#draining) this.#goaway(session, entry);
  };

  readonly #owns: (socket: net.Socket) => boolean;

  /** `owns` tells the listener's connections from any the server has of its own. */
  constructor(server: net.Server, owns: (socket: net.Socket) => boolean, options: Http2DrainOptions = {}) {
    this.#server = server;
    this.#owns = owns;
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
    if (entry.opened > 0) {
      this.#announce(session, entry);
      return;
    }
    // A session that has not sent its first request yet (a client that
    // connected just before the close) gets to send it: a peer that receives
    // GOAWAY drops the streams it has queued but not sent (nghttp2 will not
    // open a stream after GOAWAY), so announcing now would lose that request.
    const announce = (): void => {
      clearTimeout(timer);
      session.off('stream', announce);
      this.#announce(session, entry);
    };
    const timer = setTimeout(announce, this.#pingTimeout);
    session.once('stream', announce);
  }

  #announce(session: http2.ServerHttp2Session, entry: Session): void {
    if (session.closed || session.destroyed) return;
    // Sent through Node, so nghttp2 ignores every stream that arrives after
    // it (session_allow_incoming_new_stream() is false once any GOAWAY is
    // sent, except one from nghttp2_submit_shutdown_notice(), which Node does
    // not expose). Writing the frame on the connection's socket instead
    // aborts the process: the session is that stream's listener, so the
    // write's completion reaches Http2Session::OnStreamAfterWrite, whose
    // CHECK(is_write_in_progress()) fails — always over TLS (TLSWrap
    // completes every write later, and CHECKs one write at a time), and over
    // h2c whenever the write cannot complete at once (Node 20 and 24).
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, ANNOUNCE_LAST_STREAM_ID);
    entry.phase = 'announced';
    let timer: NodeJS.Timeout | undefined;
    const final = (): void => {
      if (entry.phase !== 'announced') return;
      clearTimeout(timer);
      if (session.destroyed) return;
      if (session.closed) {
        // The client's answering GOAWAY came first: Node's own close() sent
        // the final one.
        entry.phase = 'final';
        this.#maybeEnd(entry);
      } else if (entry.streams > 0) {
        // close() sends it and marks the session closed, so the GOAWAY a
        // client answers with does not make Node send one more.
        entry.phase = 'final';
        session.close();
      } else {
        // Deferred, as Node defers its own destroy, off the nghttp2 stack;
        // and until our GOAWAY is written (Node writes frames from a native
        // immediate, which runs before this one): until then a request read
        // from the socket still opens a stream.
        entry.phase = 'finishing';
        setImmediate(() => {
          if (session.destroyed) return;
          if (entry.streams > 0 || session.closed) {
            entry.phase = 'final';
            if (!session.closed) session.close();
            this.#maybeEnd(entry);
            return;
          }
          // No stream to wait for: destroy() sends Node's terminating GOAWAY
          // — the final one, with the last stream processed — and ends the
          // socket once it is written. close() and then end() would FIN
          // before the GOAWAY is out, and close() alone makes Node add that
          // terminating GOAWAY as a third frame.
          session.destroy();
        });
      }
    };
    entry.finish = final;
    // Once a GOAWAY is out and no stream is open, nghttp2 reads nothing more
    // (nghttp2_session_want_read() is 0): no PING ACK would ever arrive.
    if (entry.streams === 0) {
      final();
      return;
    }
    // Two PING round trips, not one: a peer's HTTP/2 stack sends its PING ACK
    // ahead of frames it queued earlier (nghttp2 writes urgent frames first),
    // so a request sent just before our GOAWAY can trail the first ACK; by
    // the second ACK everything sent before it has arrived. Node's nghttp2
    // does not process a stream that arrives after any GOAWAY it sent, so
    // such a stream is not served: the final GOAWAY's last-stream-id leaves
    // it out, which tells the client it is safe to retry.
    timer = setTimeout(final, this.#pingTimeout);
    const secondPing = (): void => {
      if (entry.phase !== 'announced' || session.closed || session.destroyed || !session.ping(final)) final();
    };
    if (!session.ping(secondPing)) final();
  }

  // FIN once the final GOAWAY is out and the last stream is done; Node keeps
  // reading until the peer closes, so nothing unread can turn it into RST.
  #maybeEnd(entry: Session): void {
    if (entry.phase === 'final' && entry.streams === 0 && !entry.socket.destroyed) entry.socket.end();
  }
}
