// server.close() is how most users close: it must give exactly what
// listener.close() gives. On Node >= 19 http's own close path ends idle
// keep-alive connections first (closeIdleConnections), which resets a client
// whose next request is already in the server's receive buffer. Each case
// runs through server.close() and through listener.close().
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type CloseReport, type Listener } from '../../src/index.js';
import { HOST, Opened, certificate, nextEvent, rawGet, within } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

type Kind = 'http' | 'https' | 'http2 allowHTTP1';

function makeServer(kind: Kind): net.Server {
  const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    response.end(`${request.url}\n`);
  };
  const { key, cert } = certificate();
  if (kind === 'http') return http.createServer(handler);
  if (kind === 'https') return https.createServer({ key, cert }, handler);
  return http2.createSecureServer({ key, cert, allowHTTP1: true }, handler as never);
}

/**
 * A keep-alive client between two requests: the first is answered, the
 * second is written and sits in the server's receive buffer, unread, when
 * the close begins (same tick).
 */
async function closeWithRequestOnTheWire(kind: Kind, route: 'server.close()' | 'listener.close()') {
  const server = makeServer(kind);
  const listener = opened.listener(await listen(server, { host: HOST }));
  const client = opened.raw(listener.address().port, { secure: kind !== 'http' });
  client.socket.write(rawGet('/first'));
  const first = await client.response();

  let callback: { called: boolean; error: unknown } = { called: false, error: undefined };
  const serverClosed = nextEvent(server, 'close');
  let closing: Promise<CloseReport>;
  client.socket.write(rawGet('/second'));
  if (route === 'server.close()') {
    server.close((error?: Error) => (callback = { called: true, error }));
    closing = listener.close();
  } else {
    closing = listener.close();
  }
  const second = await client.response().catch((error: Error) => error);
  await client.finished();
  const report = await opened.settled(listener, closing);
  await serverClosed;
  return { first, second, client, report, callback, listener };
}

describe.each<Kind>(['http', 'https', 'http2 allowHTTP1'])('%s: a keep-alive client with its next request on the wire', (kind) => {
  test.each(['server.close()', 'listener.close()'] as const)('%s answers it with Connection: close; no reset', async (route) => {
    const { first, second, client, report, callback } = await closeWithRequestOnTheWire(kind, route);
    expect(first).toMatchObject({ status: 200, body: '/first\n' });
    expect(second).toMatchObject({ status: 200, body: '/second\n', headers: { connection: 'close' } });
    expect(client.errors).toEqual([]);
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    if (route === 'server.close()') expect(callback).toEqual({ called: true, error: undefined });
  });

  test('an idle keep-alive client is ended after the quiet window, with a FIN, by server.close() too', async () => {
    const server = makeServer(kind);
    const listener: Listener<net.Socket> = opened.listener(await listen(server, { host: HOST, http: { quietWindow: 50 } }));
    const client = opened.raw(listener.address().port, { secure: kind !== 'http' });
    client.socket.write(rawGet('/only'));
    await client.response();
    const closing = listener.close();
    const serverClosed = nextEvent(server, 'close');
    server.close();
    await client.finished();
    const report = await within(closing, 'the close');
    await serverClosed;
    expect(client.errors).toEqual([]);
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(report.protocol).toMatchObject({ http: { endedIdle: 1 } });
  });
});
