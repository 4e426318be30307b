// Issue 4, test 3: a connection accepted before close() whose TLS handshake
// has not started holds the listener open; it is served if it handshakes, and
// ended with a FIN (never a reset) at the deadline if it does not.
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Opened, certificate, codeOf, nextEvent, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

async function httpsListener() {
  const server = https.createServer(certificate(), (_request, response) => response.end('ok\n'));
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  return { server, listener, port: listener.address().port };
}

/** A plain TCP client, accepted by the listener (not yet handshaking). */
async function acceptedRawClient(listener: Awaited<ReturnType<typeof httpsListener>>['listener'], port: number) {
  const accepted = nextEvent(listener, 'connection');
  const raw = opened.track(net.connect({ port, host: '127.0.0.1' }));
  const events: string[] = [];
  const errors: string[] = [];
  raw.on('error', (error) => errors.push(codeOf(error) ?? error.message));
  raw.on('end', () => events.push('end'));
  raw.on('close', () => events.push('close'));
  await nextEvent(raw, 'connect');
  await accepted;
  return { raw, events, errors };
}

describe('a TLS connection accepted before close() that has not handshaken yet', () => {
  test('handshakes and sends a request after close() began: it is served with Connection: close', async () => {
    const { listener, port } = await httpsListener();
    const { raw, errors } = await acceptedRawClient(listener, port);

    const closing = listener.close();
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(2);

    const secure = opened.track(tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' }));
    let response = '';
    const tlsErrors: string[] = [];
    secure.setEncoding('latin1');
    secure.on('data', (chunk: string) => (response += chunk));
    secure.on('error', (error) => tlsErrors.push(codeOf(error) ?? error.message));
    secure.on('secureConnect', () => secure.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await nextEvent(secure, 'close');

    const report = await closing;
    await opened.closed(listener);
    expect([...tlsErrors, ...errors]).toEqual([]);
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
    expect(response.endsWith('ok\n')).toBe(true);
    expect(report).toMatchObject({ openAtClose: 1, accepted: 0, served: 1, ended: 0, destroyed: 0 });
    expect(listener.count).toBe(0);
  });

  test('never handshakes: close({ timeout: 1000 }) ends it with a FIN, the client reads EOF', async () => {
    const { listener, port } = await httpsListener();
    const { events, errors } = await acceptedRawClient(listener, port);

    const closing = listener.close({ timeout: 1000 });
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(2);

    const report = await closing;
    await opened.closed(listener);
    await waitFor('the client socket closed', () => events.includes('close'));
    expect(errors).toEqual([]);
    expect(events).toEqual(['end', 'close']);
    expect(report).toMatchObject({ openAtClose: 1, accepted: 0, served: 0, ended: 1, destroyed: 0 });
  });
});
