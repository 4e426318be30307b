import type net from 'node:net';
import type { ListenSocket } from '../core/listen-socket.js';
import { openHttpSockets } from '../core/node-internals.js';
import { validateObject } from '../core/validate.js';
import type { DrainReport } from '../generation.js';
import { Listener, type RetireOptions } from '../listener.js';
import { ServerFeed, type DrainOptions } from './feed.js';
import { ServerClaim, ServerTakeover, closeUnattended } from './takeover.js';
import { validateDrainOptions, validateServer } from './validate.js';

/** Options for {@link ServerListener.replace}. */
export interface ReplaceOptions extends RetireOptions, DrainOptions {}

/**
 * The listener `listen()` and `adopt()` return: a {@link Listener} whose
 * generations are Node servers. `replace(server)` swaps the server on the
 * live socket.
 */
export class ServerListener extends Listener<net.Socket> {
  #takeover: ServerTakeover | undefined;
  #drainOptions: DrainOptions;
  readonly #onAbort = (): void => closeUnattended(this);

  /**
   * Takes over `socket` for the server `claim` holds, in dependency order:
   * the takeover makes the server believe it listened and routes its close
   * here, the feed is the connection sink served.
   */
  constructor(socket: ListenSocket, claim: ServerClaim, drainOptions: DrainOptions, signal?: AbortSignal) {
    super(socket);
    this.#drainOptions = drainOptions;
    this.#takeover = new ServerTakeover(claim, this);
    this.serve(new ServerFeed(claim.server, this.#takeover, drainOptions));
    // What the server accepted itself before adopt() is drained too (http
    // and https keep a list of their connections; net and tls keep none).
    if (claim.adopting) for (const socket of openHttpSockets(claim.server)) this.include(socket);
    if (signal !== undefined) {
      signal.addEventListener('abort', this.#onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', this.#onAbort));
    }
  }

  /** `'listening'` on the current server, as `server.listen()` emits it. */
  announce(): void {
    this.#takeover?.announce();
  }

  /**
   * From the next accepted connection on, the socket feeds `server` (a new
   * handler, TLS context or options). The previous server is retired: it
   * stops listening as far as Node can tell, its connections drain by
   * protocol exactly as in a close (HTTP/1.1 `Connection: close` and the
   * quiet window, the HTTP/2 GOAWAY pair, `onDrain`), ended at `timeout` and
   * destroyed at `timeout + forceTimeout`, and it emits `'close'` once its
   * last connection is gone. The socket is never gated, swept or shut down.
   * Drain options not given are the listener's. Resolves with the retired
   * server's report.
   */
  replace(server: net.Server, options: ReplaceOptions = {}): Promise<DrainReport> {
    this.assertReplaceable();
    validateObject('options', options);
    validateServer(server);
    const drainOptions = validateDrainOptions({ ...this.#drainOptions, ...pickDrainOptions(options) });
    const claim = new ServerClaim(server, false);
    const takeover = new ServerTakeover(claim, this);
    const previous = this.#takeover;
    this.#takeover = takeover;
    this.#drainOptions = drainOptions;
    previous?.retire();
    const retired = this.replaceSink(new ServerFeed(server, takeover, drainOptions), {
      timeout: options.timeout,
      forceTimeout: options.forceTimeout,
    });
    takeover.announce();
    return retired;
  }
}

function pickDrainOptions(options: ReplaceOptions): DrainOptions {
  const picked: DrainOptions = {};
  if (options.onDrain !== undefined) picked.onDrain = options.onDrain;
  if (options.http !== undefined) picked.http = options.http;
  if (options.http2 !== undefined) picked.http2 = options.http2;
  return picked;
}
