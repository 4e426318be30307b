import net from 'node:net';
import { invalidArgType } from '../core/errors.js';
import { validateInteger, validateObject } from '../core/validate.js';
import type { DrainOptions } from './feed.js';

const MAX_MS = 2 ** 31 - 1;

export function validateServer(server: unknown): asserts server is net.Server {
  if (!(server instanceof net.Server)) {
    throw invalidArgType('server', 'an instance of net.Server (net, tls, http, https or http2)', server);
  }
}

export function validateSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return signal;
}

export function validateDrainOptions(options: DrainOptions): DrainOptions {
  if (options.onDrain !== undefined && typeof options.onDrain !== 'function') {
    throw invalidArgType('options.onDrain', 'of type function', options.onDrain);
  }
  if (options.http !== undefined) {
    const http = validateObject('options.http', options.http);
    if (http.quietWindow !== undefined) validateInteger('options.http.quietWindow', http.quietWindow, 0, MAX_MS);
    if (http.linger !== undefined) validateInteger('options.http.linger', http.linger, 0, MAX_MS);
  }
  if (options.http2 !== undefined) {
    const http2 = validateObject('options.http2', options.http2);
    if (http2.pingTimeout !== undefined) validateInteger('options.http2.pingTimeout', http2.pingTimeout, 0, MAX_MS);
  }
  return { onDrain: options.onDrain, http: options.http, http2: options.http2 };
}

