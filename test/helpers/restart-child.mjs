// Child process for test/reconfigure: one generation of a restarted https
// server. Run as
//   node restart-child.mjs <dist entry> <handover|plain> <control path> <port> <cert dir>
// `handover`: listen(server, { handover }) — takes the socket over from the
// process serving <control path>, or binds fresh. `plain`: a plain
// listen(server, { port }), the close-then-listen restart.
// Prints JSON lines on stdout: {event:'listening', pid, port}, {event:'handover',
// to}, {event:'closed', report}. SIGTERM closes the listener; the process
// exits once its listener has closed (its last connection is gone).
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { createRequire } from 'node:module';

const [entry, mode, controlPath, port, certDir] = process.argv.slice(2);
const { listen } = createRequire(import.meta.url)(entry);
const print = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const server = https.createServer(
  { key: fs.readFileSync(path.join(certDir, 'key.pem')), cert: fs.readFileSync(path.join(certDir, 'cert.pem')) },
  (_request, response) => response.end(`${process.pid}\n`),
);
const options = { host: '127.0.0.1', port: Number(port) };
if (mode === 'handover') options.handover = { path: controlPath };
let listener;
try {
  listener = await listen(server, options);
} catch (error) {
  print({ event: 'error', code: error.code ?? null, message: error.message });
  process.exit(1);
}
listener.on('handover', (event) => print({ event: 'handover', to: event.pid }));
listener.on('error', (error) => print({ event: 'listener-error', code: error.code ?? null, message: error.message }));
listener.once('close', () => {
  // Let the control socket's last line go out.
  setTimeout(() => process.exit(0), 20);
});
process.on('SIGTERM', () => {
  listener.close({ timeout: 10_000 }).then(
    (report) => print({ event: 'closed', report }),
    (error) => print({ event: 'close-error', code: error.code ?? null }),
  );
});
listener.once('close', () => print({ event: 'listener-closed', state: listener.state }));
print({ event: 'listening', pid: process.pid, port: listener.address().port });
