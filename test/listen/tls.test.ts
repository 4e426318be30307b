// TLS servers fed by the listener: 'secureConnection', 'tlsClientError',
// handshakeTimeout and SNI behave as after server.listen(); a handshake in
// progress counts as a connection.
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { selfSignedCertificate } from '../../src/testing/index.js';
import { HOST, Opened, certificate, connections, nextEvent, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const fallback = certificate();
const alpha = selfSignedCertificate({ names: ['alpha.test', HOST] });
const beta = selfSignedCertificate({ names: ['beta.test', HOST] });

/** A TLS client: connects, and resolves with the subject CN of the certificate the server chose. */
async function handshake(port: number, servername?: string): Promise<string> {
  const socket = opened.track(
    tls.connect({ port, host: HOST, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) }),
  );
  await nextEvent(socket, 'secureConnect');
  const subject = socket.getPeerCertificate().subject;
  const cn = Array.isArray(subject.CN) ? subject.CN.join(',') : String(subject.CN);
  const closed = nextEvent(socket, 'close');
  socket.end();
  await closed;
  return cn;
}

describe('tls.Server fed by listen()', () => {
  test("'secureConnection' fires for each handshake; the count covers handshakes in progress", async () => {
    const secure: string[] = [];
    const server = tls.createServer(fallback, (socket) => {
      secure.push(socket.getProtocol() ?? 'none');
      socket.resume();
      socket.on('end', () => socket.end());
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    // A raw TCP client never sends a ClientHello: accepted, counted, not secure.
    const raw = opened.raw(port);
    await waitFor('the raw client to be accepted', () => listener.count === 2);
    expect(await connections(server)).toBe(1);
    expect(secure).toEqual([]);

    expect(await handshake(port)).toBe('localhost');
    expect(await handshake(port)).toBe('localhost');
    expect(secure).toHaveLength(2);
    expect(secure[0]).toMatch(/^TLSv1\.[23]$/);

    await waitFor(() => `count 2 after the TLS clients left (is ${listener.count})`, () => listener.count === 2);
    raw.socket.destroy();
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);
    await listener.close();
    expect(listener.count).toBe(0);
  });

  test("'tlsClientError' for a client that sends garbage; its connection is released", async () => {
    const errors: { code: string | undefined; hasSocket: boolean }[] = [];
    const server = tls.createServer(fallback, () => {
      throw new Error('no secure connection expected');
    });
    server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
      errors.push({ code: error.code, hasSocket: socket instanceof tls.TLSSocket });
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const client = opened.raw(listener.address().port);
    await waitFor('the client to connect', () => client.connected);
    client.socket.write('GET / HTTP/1.1\r\nHost: not-tls\r\n\r\n');

    await waitFor('the server to drop the client', () => client.closed);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.hasSocket).toBe(true);
    expect(errors[0]!.code).toMatch(/^ERR_SSL_/);
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);
    await listener.close();
  });

  // Node only emits 'tlsClientError' at handshakeTimeout; closing is up to its
  // listener. tls.Server has none by default (the documented pattern destroys
  // the socket); https and http2 secure servers install one that does.
  test.each([
    {
      name: 'tls.Server whose tlsClientError listener destroys the socket',
      make: (errors: string[]) => {
        const server = tls.createServer({ ...fallback, handshakeTimeout: 500 });
        server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
          errors.push(error.code ?? error.message);
          socket.destroy();
        });
        return server;
      },
    },
    {
      name: 'https.Server with its default handling',
      make: (errors: string[]) => {
        const server = https.createServer({ ...fallback, handshakeTimeout: 500 });
        server.prependListener('tlsClientError', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
        return server;
      },
    },
    {
      name: 'http2.createSecureServer with its default handling',
      make: (errors: string[]) => {
        const server = http2.createSecureServer({ ...fallback, handshakeTimeout: 500 });
        server.prependListener('tlsClientError', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
        return server;
      },
    },
  ])('handshakeTimeout: $name closes a client that never sends a ClientHello', async ({ make }) => {
    const errors: string[] = [];
    const server = make(errors);
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const client = opened.raw(listener.address().port);
    await waitFor('the client to be accepted', () => listener.count === 2);

    // Bounded well past 500 ms: the assertion is that the server closes it at all.
    await waitFor('the server to close the silent client', () => client.closed, { tries: 500 });
    expect(errors).toEqual(['ERR_TLS_HANDSHAKE_TIMEOUT']);
    expect(client.data).toBe('');
    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    await listener.close();
  });

  test('SNI through SNICallback: each name gets its own certificate', async () => {
    const contexts = new Map([
      ['alpha.test', tls.createSecureContext(alpha)],
      ['beta.test', tls.createSecureContext(beta)],
    ]);
    const asked: string[] = [];
    const server = tls.createServer({
      ...fallback,
      SNICallback: (servername, callback) => {
        asked.push(servername);
        callback(null, contexts.get(servername));
      },
    });
    server.on('secureConnection', (socket) => socket.end());
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    expect(await handshake(port, 'alpha.test')).toBe('alpha.test');
    expect(await handshake(port, 'beta.test')).toBe('beta.test');
    expect(asked).toEqual(['alpha.test', 'beta.test']);
    await listener.close();
  });

  test('SNI through addContext(), with the default certificate for other names', async () => {
    const server = tls.createServer(fallback);
    server.addContext('alpha.test', alpha);
    server.addContext('beta.test', beta);
    server.on('secureConnection', (socket) => socket.end());
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    expect(await handshake(port, 'beta.test')).toBe('beta.test');
    expect(await handshake(port, 'alpha.test')).toBe('alpha.test');
    expect(await handshake(port, 'other.test')).toBe('localhost');
    await listener.close();
  });
});
