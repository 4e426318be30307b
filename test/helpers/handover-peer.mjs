// Child process for test/reconfigure/control.test.ts: a successor that
// misbehaves at one step of the handover protocol, speaking it with the
// addon's own calls. Run as
//   node handover-peer.mjs <dist dir> <control path> <behaviour>
// behaviour: 'die-before-ready' (receives the sockets, then SIGKILLs itself),
// 'die-after-ready' (takes the socket, accepts, says ready, waits for a
// line on stdin, then SIGKILLs itself), 'garbage', 'hang' (connects, sends
// nothing, waits for stdin), 'second' (a well-formed request; prints the answer).
// Prints JSON lines: {step, ...}.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [dist, control, behaviour] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const { loadBinding } = require(path.join(dist, 'core', 'native.js'));
const { ListenSocket } = require(path.join(dist, 'index.js'));
const binding = loadBinding();
const print = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const waitForStdin = () => new Promise((resolve) => process.stdin.once('data', resolve));

let fd;
try {
  fd = binding.unixConnect(control, 5000);
} catch (error) {
  print({ step: 'connect-failed', code: error.code });
  process.exit(0);
}
print({ step: 'connected' });

if (behaviour === 'garbage') {
  binding.sendWithFds(fd, Buffer.from('this is not the protocol\n'), []);
  const answer = binding.receiveWithFds(fd, 5000, 4096);
  print({ step: 'answer', eof: answer.eof, data: answer.data.toString(), fds: answer.fds.length });
  process.exit(0);
}
if (behaviour === 'hang') {
  await waitForStdin();
  process.exit(0);
}

binding.sendWithFds(fd, Buffer.from(`${JSON.stringify({ v: 1, op: 'handover' })}\n`), []);
let offer;
try {
  offer = binding.receiveWithFds(fd, 5000, 65536);
} catch (error) {
  print({ step: 'receive-failed', code: error.code });
  process.exit(0);
}
print({ step: 'offer', data: offer.data.toString().trim(), fds: offer.fds.length });
if (behaviour === 'second') process.exit(0);
if (behaviour === 'die-before-ready') process.kill(process.pid, 'SIGKILL');

// die-after-ready: take the socket, accept, say ready, then die on cue.
const socket = ListenSocket.adopt(offer.fds[0]);
for (const received of offer.fds) fs.closeSync(received);
socket.arm((fds) => {
  for (const accepted of fds) fs.closeSync(accepted);
});
binding.sendWithFds(fd, Buffer.from(`${JSON.stringify({ ready: JSON.parse(offer.data.toString()).sockets[0].name })}\n`), []);
print({ step: 'ready' });
await waitForStdin();
process.kill(process.pid, 'SIGKILL');
