// Child process for test/unix: `concurrency` AF_UNIX clients, each in a loop
// connecting to <path>, sending "ping\n" and reading until EOF, for as long
// as stdin stays open (at most <max ms>). Run as
// `node unix-loop.mjs <path | @abstract> <concurrency> <max ms>`; prints
// "ready" once started, and one JSON line when it ends:
//   { answered, connectErrors: { code: n }, failures: { what: n } }
// `answered`: connected, got "pong\n", then a clean EOF. `connectErrors`:
// connect(2) failed (ENOENT, ECONNREFUSED, EAGAIN: no connection existed).
// `failures`: anything after the connection existed — ECONNRESET, EPIPE, an
// EOF without the answer ("noAnswer") — or a connect that reported a reset.
// A client waits 1 ms after a connect error, so that a missing listener is
// not a busy loop.
import net from 'node:net';

const [target, concurrencyArgument, maxMsArgument] = process.argv.slice(2);
const path = target.startsWith('@') ? `\0${target.slice(1)}` : target;
const concurrency = Number(concurrencyArgument);
const connectErrors = {};
const failures = {};
let answered = 0;
let running = true;

const count = (tally, key) => (tally[key] = (tally[key] ?? 0) + 1);

function once() {
  return new Promise((resolve) => {
    let connected = false;
    let text = '';
    let failed = false;
    const socket = net.connect({ path });
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      connected = true;
      socket.write('ping\n');
    });
    socket.on('data', (chunk) => (text += chunk));
    socket.on('error', (error) => {
      failed = true;
      const code = error.code ?? error.message;
      if (!connected && (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EAGAIN')) count(connectErrors, code);
      else count(failures, code);
    });
    socket.on('close', () => {
      if (!failed) {
        if (text === 'pong\n') answered++;
        else count(failures, 'noAnswer');
      }
      resolve(failed && !connected);
    });
  });
}

async function loop() {
  while (running) {
    const refused = await once();
    if (refused) await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const loops = Array.from({ length: concurrency }, loop);
const finish = () => {
  running = false;
};
process.stdin.on('end', finish).resume();
const bound = setTimeout(finish, Number(maxMsArgument));
process.stdout.write('ready\n');
await Promise.all(loops);
clearTimeout(bound);
process.stdout.write(`${JSON.stringify({ answered, connectErrors, failures })}\n`);
