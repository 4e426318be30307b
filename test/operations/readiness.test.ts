// Readiness: the flag and its first reason, a tracked listener turning it
// false as it drains or closes, and the /readyz handler over HTTP/1.1
// (503 with Connection: close, so the prober's connection does not hold the
// drain) and the HTTP/2 compatibility API (no connection-specific header).
import http from 'node:http';
import http2 from 'node:http2';
import { afterEach, expect, test } from 'vitest';
import { Readiness, listen } from '../../src/index.js';
import { Opened, rawGet, request } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

test('notReady(): idempotent, the first reason stays', () => {
  const readiness = new Readiness();
  expect([readiness.ready, readiness.reason]).toEqual([true, null]);
  readiness.notReady('maintenance');
  readiness.notReady('signal');
  expect([readiness.ready, readiness.reason]).toEqual([false, 'maintenance']);
  const unnamed = new Readiness();
  unnamed.notReady();
  expect(unnamed.reason).toBe('not ready');
  expect(() => readiness.notReady(1 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  expect(() => readiness.track({} as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
});

test('track(): false from the moment the listener drains; a closed listener at once', async () => {
  const listener = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
  const readiness = new Readiness().track(listener);
  expect(readiness.ready).toBe(true);
  let readyAtDraining: boolean | undefined;
  listener.once('draining', () => (readyAtDraining = readiness.ready));
  await opened.close(listener);
  // Its own 'draining' handler was installed first: false before anyone else hears of the drain.
  expect(readyAtDraining).toBe(false);
  expect(readiness.reason).toBe('draining');
  expect(new Readiness().track(listener).reason).toBe('closed');
});

test('the handler over HTTP/1.1: 200 ok, then 503 draining with Connection: close on a keep-alive connection', async () => {
  const readiness = new Readiness();
  const listener = opened.listener(await listen(http.createServer(readiness.handler), { host: '127.0.0.1' }));
  const port = listener.address().port;
  const client = opened.raw(port);
  client.socket.write(rawGet('/readyz'));
  expect(await client.response()).toMatchObject({ status: 200, body: 'ok\n', headers: { connection: 'keep-alive', 'cache-control': 'no-store' } });
  readiness.notReady();
  client.socket.write(rawGet('/readyz'));
  expect(await client.response()).toMatchObject({ status: 503, body: 'draining\n', headers: { connection: 'close' } });
  // The server closes the prober's connection after the answer.
  await client.finished();
  expect(client.errors).toEqual([]);
  expect((await request(port, { path: '/readyz' })).status).toBe(503);
  await opened.close(listener);
});

test('the handler over HTTP/2 (compatibility API): 503 without a Connection header', async () => {
  const readiness = new Readiness();
  const server = http2.createServer(readiness.handler);
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  const session = opened.track(http2.connect(`http://127.0.0.1:${listener.address().port}`));
  const get = (): Promise<{ status: number; body: string; connection: unknown }> =>
    new Promise((resolve, reject) => {
      const stream = session.request({ ':path': '/readyz' });
      let body = '';
      let headers: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => (headers = h));
      stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => resolve({ status: Number(headers[':status']), body, connection: headers.connection }));
      stream.on('error', reject);
    });
  expect(await get()).toEqual({ status: 200, body: 'ok\n', connection: undefined });
  readiness.notReady();
  expect(await get()).toEqual({ status: 503, body: 'draining\n', connection: undefined });
  session.close();
  await opened.close(listener);
});
