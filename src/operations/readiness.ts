import type http from 'node:http';
import type http2 from 'node:http2';
import { invalidArgType } from '../core/errors.js';
import { validateString } from '../core/validate.js';
import { Listener } from '../listener.js';

/**
 * Whether this instance should get new traffic, for load balancers and
 * Kubernetes readiness probes. Ready until {@link Readiness.notReady} (a
 * signal's pre-stop phase) or until a tracked listener starts draining or
 * closes; it never turns ready again.
 */
export class Readiness {
  #reason: string | null = null;

  /** Whether the instance takes new traffic. */
  get ready(): boolean {
    return this.#reason === null;
  }

  /**
   * Why it is not ready: `'signal'` (closeOnSignals), `'draining'`,
   * `'closed'` (a tracked listener) or the caller's reason; null while ready.
   */
  get reason(): string | null {
    return this.#reason;
  }

  /** Turns not ready; idempotent, the first reason stays. @default reason 'not ready' */
  notReady(reason = 'not ready'): void {
    validateString('reason', reason);
    this.#reason ??= reason;
  }

  /** Turns not ready the moment `listener` starts draining or closes (at once if it already has). */
  track(listener: Listener): this {
    if (!(listener instanceof Listener)) throw invalidArgType('listener', 'an instance of Listener', listener);
    if (listener.state !== 'accepting') {
      this.notReady(listener.state);
      return this;
    }
    listener.once('draining', () => this.notReady('draining'));
    listener.once('close', () => this.notReady('closed'));
    return this;
  }

  /**
   * A request listener for `/readyz`-style probes: `200 ok` while ready,
   * then `503 draining` with `Connection: close`, so that the prober's
   * keep-alive connection does not hold the drain. Works as an http/https
   * request listener, with the http2 compatibility API (which has no
   * Connection header), and as an Express, Koa (`ctx.req, ctx.res`) or
   * Fastify (`reply.raw`) route body.
   */
  readonly handler = (
    request: http.IncomingMessage | http2.Http2ServerRequest,
    response: http.ServerResponse | http2.Http2ServerResponse,
  ): void => {
    const ready = this.ready;
    const body = ready ? 'ok\n' : 'draining\n';
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
    };
    // Connection-specific headers are forbidden in HTTP/2 (RFC 9113 §8.2.2).
    if (!ready && request.httpVersionMajor < 2) headers.connection = 'close';
    (response as http.ServerResponse).writeHead(ready ? 200 : 503, headers);
    response.end(body);
  };
}
