// The demo's application: the server every demo process runs (demo-server.ts
// for the close, restart-server.ts for the restart).
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';

export type DemoProtocol = 'http' | 'https' | 'h2';

const HANDLER_CPU_MS = 1;

export function createDemoServer(protocol: DemoProtocol, key: string, cert: string): net.Server {
  // 1 ms of CPU per request, as a real handler spends rendering or parsing:
  // under this load the server is the bottleneck, so connections wait in its
  // accept queue — the situation in which a close resets clients.
  const handler = (_request: unknown, response: http.ServerResponse | http2.Http2ServerResponse): void => {
    const until = performance.now() + HANDLER_CPU_MS;
    while (performance.now() < until);
    response.setHeader('content-type', 'text/plain');
    response.end('ok\n');
  };
  if (protocol === 'http') return http.createServer(handler);
  if (protocol === 'https') return https.createServer({ key, cert }, handler);
  return http2.createSecureServer({ key, cert }, handler);
}
