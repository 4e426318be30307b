// Child process for test/reconfigure/systemd.test.ts, started as systemd
// would start a socket-activated service: the sockets at fds 3 and up,
// LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID (set by the shell that execs
// node), NOTIFY_SOCKET. Run as `node systemd-child.mjs <dist entry> <name>...`:
// one http server per name, listen(server, { systemd: name }). Prints JSON
// lines: {event:'listening', name, port, shared}, {event:'warning', code},
// {event:'closed', name, report}. SIGTERM closes every listener; the process
// exits once they have all closed.
import http from 'node:http';
import { createRequire } from 'node:module';

const [entry, ...names] = process.argv.slice(2);
const { listen } = createRequire(import.meta.url)(entry);
const print = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
process.on('warning', (warning) => print({ event: 'warning', code: warning.code ?? warning.name }));

const listeners = [];
for (const name of names) {
  const server = http.createServer((_request, response) => response.end(`${name} ${process.pid}\n`));
  const listener = await listen(server, { systemd: name, host: '127.0.0.1', port: 0 });
  listeners.push({ name, listener });
  print({ event: 'listening', name, port: listener.address().port, shared: listener.shared });
}
print({ event: 'env', LISTEN_FDS: process.env.LISTEN_FDS ?? null });
process.on('SIGTERM', async () => {
  for (const { name, listener } of listeners) {
    const report = await listener.close({ timeout: 5000 });
    print({ event: 'closed', name, report });
  }
});
