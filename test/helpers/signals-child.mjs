// Child process for test/operations/signals.test.ts: an http server fed by
// listen() and a raw Listener (an echo over a ListenSocket, with its own
// sink), both closed by closeOnSignals(). Run as
//   node signals-child.mjs <dist entry> <options JSON>
// where the options are closeOnSignals()'s (signals, preStopDelay, timeout,
// forceTimeout, exit) plus `closeRawFirst` (the raw listener closes by itself
// before any signal). A Readiness answers /readyz.
//
// Prints one JSON line per event: listening {port, rawPort}, request {url},
// draining {which}, raw-closed {report} (closeRawFirst), done {report,
// handlers} (the shutdown's report and the SIGTERM handlers left), uncaught
// {message}. Requests to /hold are answered only when the parent writes
// "release" on stdin; /readyz by the readiness; every other request at once.
// With exit:false the process is left to exit by itself, after sending
// STATUS=done to NOTIFY_SOCKET when it is set.
import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';
import { onStdinLines, say } from './child-io.mjs';

const [entry, optionsJson] = process.argv.slice(2);
const { listen, closeOnSignals, Readiness, Listener, ListenSocket, sdNotify } = createRequire(import.meta.url)(entry);
const { closeRawFirst = false, ...options } = JSON.parse(optionsJson);

process.on('uncaughtException', (error) => say('uncaught', { message: String(error?.stack ?? error) }));

const readiness = new Readiness();
const held = [];
const server = http.createServer((request, response) => {
  say('request', { url: request.url });
  if (request.url === '/readyz') readiness.handler(request, response);
  else if (request.url === '/hold') held.push(response);
  else response.end('ok');
});

onStdinLines((line) => {
  if (line === 'release') for (const response of held.splice(0)) response.end('released');
});

// A raw Listener's sink: echo; a drain ends each connection after its current write.
const rawSink = {
  wrap: (fd) => new net.Socket({ fd, readable: true, writable: true }),
  deliver(socket, draining) {
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => {});
    if (draining) socket.end();
  },
  draining(on, sockets) {
    if (on) for (const socket of sockets) socket.end();
  },
  endGently: (socket) => socket.end(),
  closed() {},
  limit: () => undefined,
};

const httpListener = await listen(server, { host: '127.0.0.1', http: { quietWindow: 100, linger: 500 } });
const rawListener = new Listener(await ListenSocket.open({ host: '127.0.0.1' }), rawSink);
httpListener.on('draining', () => say('draining', { which: 'http' }));
rawListener.on('draining', () => say('draining', { which: 'raw' }));
if (closeRawFirst) say('raw-closed', { report: await rawListener.close() });

const handle = closeOnSignals([httpListener, rawListener], { ...options, readiness });
handle.done.then((report) => {
  say('done', { report, handlers: process.listenerCount('SIGTERM') });
  if (options.exit === false && process.env.NOTIFY_SOCKET) sdNotify('STATUS=done');
});
say('listening', { port: httpListener.address().port, rawPort: closeRawFirst ? null : rawListener.address().port });
