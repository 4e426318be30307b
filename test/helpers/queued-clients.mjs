// Child process for test/close and test/unix: raw clients (TCP on
// 127.0.0.1, or AF_UNIX on a path) that each send one HTTP/1.1 request,
// started on command so that the parent can block its event loop first. Run
// as `node queued-clients.mjs <port | path | @abstract> <count> [<connected file>]`;
// prints "ready", connects on a "go" line on stdin, creates <connected file>
// (when given) once every client is connected — the parent, its loop
// blocked, can look for it synchronously — and prints one JSON line when
// every client has finished:
//   { results: [{ connected, status, connectionClose, error }] }
// Bounded: a client that has not finished after 20 s is counted as stalled.
import net from 'node:net';

import fs from 'node:fs';

const [target, countArgument, connectedFile] = process.argv.slice(2);
const count = Number(countArgument);
// An abstract name travels as '@name' (argv holds no NUL).
const where = /^\d+$/.test(target)
  ? { port: Number(target), host: '127.0.0.1' }
  : { path: target.startsWith('@') ? `\0${target.slice(1)}` : target };
const results = [];
let finished = 0;
let connected = 0;

function start(index) {
  const result = { connected: false, status: null, connectionClose: false, error: null };
  results[index] = result;
  let text = '';
  const socket = net.connect(where);
  socket.setEncoding('latin1');
  socket.on('connect', () => {
    result.connected = true;
    if (++connected === count && connectedFile !== undefined) fs.writeFileSync(connectedFile, '');
    socket.write(`GET /${index} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
  socket.on('data', (chunk) => (text += chunk));
  socket.on('error', (error) => (result.error = error.code ?? error.message));
  socket.on('close', () => {
    const head = text.split('\r\n\r\n', 1)[0] ?? '';
    const status = /^HTTP\/1\.1 (\d{3})/.exec(head);
    result.status = status === null ? null : Number(status[1]);
    result.connectionClose = /\r\nconnection: close/i.test(head);
    if (++finished === count) {
      process.stdout.write(`${JSON.stringify({ results })}\n`);
      process.exit(0);
    }
  });
}

let input = '';
process.stdin.setEncoding('utf8').on('data', (chunk) => {
  input += chunk;
  if (input.includes('go\n')) {
    process.stdin.pause();
    for (let i = 0; i < count; i++) start(i);
  }
});
setTimeout(() => {
  for (const result of results) if (result !== undefined && result.status === null && result.error === null) result.error = 'stalled';
  process.stdout.write(`${JSON.stringify({ results })}\n`);
  process.exit(0);
}, 20_000);
process.stdout.write('ready\n');
