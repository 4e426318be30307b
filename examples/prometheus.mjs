// Prometheus metrics for a graceful-listener server, with prom-client: the
// kernel accept queue (listener.pending()) and the listener's own figures
// (listener.stats()), read at each scrape — nothing is polled in between.
//
//   npm install graceful-listener prom-client
//   node examples/prometheus.mjs            (PORT=8080 by default; PORT=0 picks one)
//   curl http://127.0.0.1:8080/metrics
//
// The app answers every other path; /readyz is the readiness probe, and
// SIGTERM drains it (a second SIGTERM forces the drain).
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Readiness, closeOnSignals, listen } from 'graceful-listener';
import client from 'prom-client';

/**
 * Registers the listener's gauges and counters in `registry`. Each is
 * collected at scrape time from one stats() call (a TCP_INFO getsockopt and
 * a few counters); `handshakes: true` adds the handshakes in SYN_RECV, which
 * costs a sock_diag walk of every socket of the namespace per scrape.
 */
export function listenerMetrics(listener, { registry = client.register, prefix = 'graceful_listener_', handshakes = false } = {}) {
  const labelNames = ['state'];
  const gauge = (name, help, read, names = []) =>
    new client.Gauge({ name: prefix + name, help, labelNames: names, registers: [registry], collect() { read(this); } });
  const counter = (name, help, key) =>
    new client.Counter({
      name: prefix + name,
      help,
      registers: [registry],
      collect() {
        // The listener keeps the lifetime total: report it as it is.
        this.reset();
        this.inc(listener.stats()[key]);
      },
    });

  gauge('state', 'The listener state (1 for the current one)', (metric) => {
    metric.reset();
    metric.set({ state: listener.state }, 1);
  }, labelNames);
  gauge('connections', 'Open connections, every generation', (metric) =>
    metric.set(listener.stats().active.reduce((sum, open) => sum + open, 0)),
  );
  gauge('generations', 'Servers fed by the socket: the current one and replaced ones still draining', (metric) =>
    metric.set(listener.stats().active.length),
  );
  gauge('queued', 'Connections in the kernel accept queue', (metric) =>
    metric.set(listener.state === 'closed' ? 0 : listener.pending().queued),
  );
  gauge('backlog', 'The accept queue cap, min(backlog, somaxconn)', (metric) => metric.set(listener.stats().backlog));
  if (handshakes) {
    gauge('handshaking', 'TCP handshakes in SYN_RECV', (metric) =>
      metric.set(listener.state === 'closed' ? 0 : listener.pending({ handshakes: true }).handshaking),
    );
  }
  counter('accepted_total', 'Connections accepted', 'accepted');
  counter('served_while_draining_total', 'Connections accepted after a close began', 'servedWhileDraining');
  counter('ended_total', 'Connections ended gently by a deadline', 'ended');
  counter('destroyed_total', 'Connections destroyed by a deadline', 'destroyed');
}

/** The example server: the app, /metrics and /readyz on one listener. */
export async function start({ port = 8080, host = '127.0.0.1', signals = true } = {}) {
  const registry = new client.Registry();
  const readiness = new Readiness();
  const server = http.createServer(async (request, response) => {
    if (request.url === '/metrics') {
      response.setHeader('content-type', registry.contentType);
      response.end(await registry.metrics());
    } else if (request.url === '/readyz') {
      readiness.handler(request, response);
    } else {
      response.end('hello\n');
    }
  });
  const listener = await listen(server, { port, host });
  readiness.track(listener);
  listenerMetrics(listener, { registry });
  const shutdown = signals ? closeOnSignals(listener, { readiness, preStopDelay: 0 }) : undefined;
  return { listener, registry, readiness, shutdown };
}

// Run as a program (not imported).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { listener } = await start({ port: Number(process.env.PORT ?? 8080) });
  process.stdout.write(`${JSON.stringify({ metrics: `http://127.0.0.1:${listener.address().port}/metrics` })}\n`);
}
