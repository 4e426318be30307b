// One server process of `graceful-listener demo --scenario restart`: the
// demo's server (demo-app.ts) fed by listen(), restarted by the load kit's
// runRestarts, which spawns one of these per restart. It speaks the kit's
// protocol: JSON lines on stdout, the first one once it accepts.
//
//   node restart-server.js --port N --key FILE --cert FILE
//                          [--protocol http|https|h2] [--handover PATH] [--close-timeout MS]
//
// With --handover, listen(server, { handover: PATH }) takes the listening
// socket over from the process serving PATH (or binds fresh if none does),
// and this process retires when its own successor takes over. Without it,
// a plain listen() on the port: the close-then-listen restart.
//
// Lines (t: CLOCK_MONOTONIC in ms, comparable between processes):
//   {"event":"listening","pid","port","handedOver","listenCalledAt":t,"listeningAt":t}
//   {"event":"handover","to":pid,"at":t}      a successor took the socket; draining
//   {"event":"closed","at":t,"report"?}       the listener closed; the process exits
// SIGTERM closes the listener (listener.close(): nothing queued is reset).
import fs from 'node:fs';
import type net from 'node:net';
import { parseArgs } from 'node:util';
import { listen, type HandoverEvent, type ListenOptions } from '../index.js';
import { createDemoServer, type DemoProtocol } from './demo-app.js';

const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const print = (line: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      key: { type: 'string' },
      cert: { type: 'string' },
      protocol: { type: 'string', default: 'https' },
      handover: { type: 'string' },
      'close-timeout': { type: 'string', default: '5000' },
    },
  });
  const protocol = values.protocol as DemoProtocol;
  const tls = protocol === 'http' ? { key: '', cert: '' } : { key: fs.readFileSync(values.key!, 'utf8'), cert: fs.readFileSync(values.cert!, 'utf8') };
  const server = createDemoServer(protocol, tls.key, tls.cert);
  // Errors of single connections (a client that went away) are not the demo's business.
  server.on('tlsClientError', () => {});
  server.on('clientError', (_error: Error, socket: net.Socket) => socket.destroy());

  const options: ListenOptions = { host: '127.0.0.1', port: Number(values.port) };
  if (values.handover !== undefined) options.handover = { path: values.handover };
  const listenCalledAt = monotonicMs();
  const listener = await listen(server, options);
  const listeningAt = monotonicMs();

  listener.on('handover', (event: HandoverEvent) => print({ event: 'handover', to: event.pid, at: monotonicMs() }));
  listener.on('error', (error: Error & { code?: string }) => print({ event: 'listener-error', code: error.code ?? null, message: error.message }));
  let closeReport: unknown;
  listener.once('close', () => {
    const at = monotonicMs();
    // close() settles before 'close' is emitted; its report reaches closeReport a tick later.
    // A retired process writes its last line to the successor on 'close' too: let it go out.
    setTimeout(() => {
      print({ event: 'closed', at, ...(closeReport !== undefined ? { report: closeReport } : {}) });
      process.exit(0);
    }, 20);
  });
  process.once('SIGTERM', () => {
    listener.close({ timeout: Number(values['close-timeout']), forceTimeout: 1000 }).then(
      (report) => {
        closeReport = report;
      },
      (error: Error) => print({ event: 'close-error', message: error.message }),
    );
  });
  print({
    event: 'listening',
    pid: process.pid,
    port: listener.address().port,
    handedOver: listener.shared,
    listenCalledAt,
    listeningAt,
  });
}

main().catch((error: Error & { code?: string }) => {
  print({ event: 'error', code: error.code ?? null, message: error.message });
  process.exit(1);
});
