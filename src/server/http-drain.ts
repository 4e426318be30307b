import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';

/**
 * HTTP/1.1 in draining mode: every response not yet started, in flight or on a
 * connection accepted later, is sent with `Connection: close`, so the client
 * closes after it instead of sending the next request to a closing server.
 * Idle keep-alive sockets are left alone: under load their next request is
 * already on the wire, and it is answered with `Connection: close` too.
 */
export class HttpDrain {
  readonly #server: net.Server;
  readonly #open = new Set<http.ServerResponse>();
  #draining = false;

  readonly #onRequest = (_request: http.IncomingMessage, response: http.ServerResponse): void => {
    if (this.#draining) {
      response.shouldKeepAlive = false;
      return;
    }
    this.#open.add(response);
    response.once('close', () => this.#open.delete(response));
  };

  constructor(server: net.Server) {
    this.#server = server;
    // Prepended so it runs before a handler that answers synchronously.
    server.prependListener('request', this.#onRequest);
  }

  static applies(server: net.Server): boolean {
    return server instanceof http.Server || server instanceof https.Server;
  }

  start(): void {
    this.#draining = true;
    for (const response of this.#open) {
      if (!response.headersSent) response.shouldKeepAlive = false;
    }
    this.#open.clear();
  }

  stop(): void {
    this.#draining = false;
  }

  dispose(): void {
    this.#server.removeListener('request', this.#onRequest);
    this.#open.clear();
  }
}
