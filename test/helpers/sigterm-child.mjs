// Child process for test/close/process.test.ts: an http server fed by a real
// listener (the built package, as a user loads it) that closes on SIGTERM
// and is left to exit by itself once the close resolves — no process.exit():
// anything the close left open (a handle, a ref'd timer) keeps it alive, and
// the parent's bound then kills it. Run as `node sigterm-child.mjs <dist entry>`.
//
// Prints one JSON line per event: listening {port}, request {url}, signal
// {state, same} (the listener's state when a SIGTERM arrived), draining, closed
// {report}, uncaught {message}. Requests to /hold are answered only when
// the parent writes "release" on stdin; every other request at once.
import http from 'node:http';
import { createRequire } from 'node:module';
import { onStdinLines, say } from './child-io.mjs';

const [entry] = process.argv.slice(2);
const { listen } = createRequire(import.meta.url)(entry);

process.on('uncaughtException', (error) => say('uncaught', { message: String(error?.stack ?? error) }));

const held = [];
const server = http.createServer((request, response) => {
  say('request', { url: request.url });
  if (request.url === '/hold') held.push(response);
  else response.end('ok');
});

const release = () => {
  for (const response of held.splice(0)) response.end('released');
};
onStdinLines((line) => {
  if (line === 'release') release();
});

const listener = await listen(server, { host: '127.0.0.1', http: { quietWindow: 100, linger: 500 } });
listener.on('draining', () => say('draining'));
// Every SIGTERM asks for the close; a second one must get the same promise
// (`same`), and the process waits for that close as before.
let first;
process.on('SIGTERM', () => {
  const state = listener.state;
  const closing = listener.close({ timeout: 15_000, forceTimeout: 2_000 });
  say('signal', { state, same: first === undefined ? null : closing === first });
  if (first !== undefined) return;
  first = closing;
  closing.then(
    (report) => say('closed', { report }),
    (error) => say('uncaught', { message: `close rejected: ${error?.code ?? error}` }),
  );
});
say('listening', { port: listener.address().port });
