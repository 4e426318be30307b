// Servers whose behaviour is known in advance, for checking the load kit's
// counts. Every server records what it opened and closes it in close().
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { selfSignedCertificate, type KeyPair } from '../../src/testing/index.js';

export interface TestServer {
  url: string;
  /** Connections (or HTTP/2 sessions) the server saw. */
  readonly connections: number;
  close(): Promise<void>;
}

let certificate: KeyPair | undefined;
export function cert(): KeyPair {
  certificate ??= selfSignedCertificate();
  return certificate;
}

async function serve(server: net.Server, scheme: string, counter: () => number): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `${scheme}://127.0.0.1:${port}/`,
    get connections() {
      return counter();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Raw HTTP/1.1 over TCP or TLS: the first `resets` connections are reset
 * (RST) as soon as they are accepted, before any TLS; of the others, the
 * first `fins` are closed with FIN after their request was read, without an
 * answer; the rest get 200.
 */
export async function scriptedServer({ resets = 0, fins = 0, tls = false }: { resets?: number; fins?: number; tls?: boolean }): Promise<TestServer> {
  let accepted = 0;
  let spoken = 0;
  const speak = (socket: net.Socket): void => {
    const fin = spoken++ < fins;
    let request = '';
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      if (request.includes('\r\n\r\n')) return;
      request += chunk.toString('latin1');
      if (!request.includes('\r\n\r\n')) return;
      // Ending only once the request is read: closing with unread input would send RST.
      if (fin) socket.end();
      else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n');
    });
  };
  const server = tls ? new TlsServer(cert()) : net.createServer();
  // Prepended: runs before the TLS server wraps the socket.
  server.prependListener('connection', (raw: net.Socket) => {
    if (accepted++ < resets) raw.resetAndDestroy();
    else if (!tls) speak(raw);
  });
  if (tls) {
    server.on('secureConnection', speak);
    server.on('tlsClientError', () => {});
  }
  return serve(server, tls ? 'https' : 'http', () => accepted);
}

/** 503 for the first `failures` requests, then 200; keep-alive as the client asks. */
export async function statusServer(failures: number): Promise<TestServer> {
  let requests = 0;
  let connections = 0;
  const server = http.createServer((_request, response) => {
    response.statusCode = requests++ < failures ? 503 : 200;
    response.end('ok\n');
  });
  server.on('connection', () => connections++);
  return serve(server, 'http', () => connections);
}

/** An https server answering 200 to everything. */
export async function httpsServer(): Promise<TestServer> {
  let connections = 0;
  const server = https.createServer(cert(), (_request, response) => response.end('ok\n'));
  server.on('connection', () => connections++);
  return serve(server, 'https', () => connections);
}

/** Accepts connections and never answers. */
export async function silentServer(): Promise<TestServer> {
  let connections = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.resume();
  });
  server.on('connection', () => connections++);
  return serve(server, 'http', () => connections);
}

/** HTTP/2 (TLS, or h2c with `plain`); the first `refuse` streams are refused with REFUSED_STREAM. */
export async function http2Server(options: { plain?: boolean; refuse?: number } = {}): Promise<TestServer> {
  let sessions = 0;
  let streams = 0;
  const server = options.plain ? http2.createServer() : http2.createSecureServer(cert());
  server.on('session', () => sessions++);
  server.on('stream', (stream) => {
    // A refused stream errors on the server side too: that is the point here.
    stream.on('error', () => {});
    if (streams++ < (options.refuse ?? 0)) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ':status': 200 });
    stream.end('ok\n');
  });
  return serve(server, options.plain ? 'http' : 'https', () => sessions);
}

/** A port nothing listens on (it was bound a moment ago, then closed). */
export async function refusingUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/`;
}
