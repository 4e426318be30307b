// A backend behind the load balancer of test/deploy/haproxy.test.ts, as a
// user runs one: `node lb-backend.mjs <dist entry> <mode> <preStopDelay ms>`.
//
// mode 'graceful': the built package's listen(), /readyz from a Readiness,
// closeOnSignals() with the pre-stop delay: the first SIGTERM turns /readyz
// to 503, the server keeps serving for the delay, then the listener drains
// and the process exits by itself.
// mode 'server-close': what most servers do today: server.listen(), /readyz
// always 200, and server.close() on SIGTERM.
//
// Prints one JSON line: {"port": n} once it listens.
import http from 'node:http';
import { createRequire } from 'node:module';

const [entry, mode, preStopDelay] = process.argv.slice(2);
const { listen, closeOnSignals, Readiness } = createRequire(import.meta.url)(entry);

const readiness = mode === 'graceful' ? new Readiness() : undefined;
const server = http.createServer((request, response) => {
  if (request.url === '/readyz') {
    if (readiness !== undefined) readiness.handler(request, response);
    else response.end('ok\n');
    return;
  }
  // A little work per request, so that requests are in flight when a roll begins.
  setTimeout(() => response.end(`served by ${process.pid}\n`), 1);
});

let port;
if (mode === 'graceful') {
  const listener = await listen(server, { host: '127.0.0.1' });
  closeOnSignals(listener, { readiness, preStopDelay: Number(preStopDelay), timeout: 10_000 });
  port = listener.address().port;
} else if (mode === 'server-close') {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
  port = server.address().port;
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(`${JSON.stringify({ port })}\n`);
