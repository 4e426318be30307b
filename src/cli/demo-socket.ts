// `graceful-listener demo-socket` (`npm run demo:socket`): the listening
// socket at work. Clients connect while accept() is off, wait in the kernel's
// accept queue (counted by pending()), and are all served once accept() is
// armed again; none of them is reset.
import net from 'node:net';
import { ListenSocket } from '../index.js';
import { parseCommand, parseInteger } from './options.js';

export const DEMO_SOCKET_USAGE = `Usage: graceful-listener demo-socket [options]

Opens a ListenSocket on 127.0.0.1 with accept() off, lets clients connect and
wait in the kernel's accept queue, shows pending(), then arms accept() and
serves them in batches: none is reset.

Options:
  --clients N    clients to queue, 1 to 4000 (default 200)
  -h, --help`;

interface Client {
  socket: net.Socket;
  connected: Promise<void>;
  reply: Promise<string>;
}

function connect(port: number): Client {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reply = new Promise<string>((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
  });
  connected.catch(() => {});
  reply.catch(() => {});
  return { socket, connected, reply };
}

function fdRange(fds: number[]): string {
  const sorted = [...fds].sort((a, b) => a - b);
  return sorted.length === 1 ? `fd ${sorted[0]}` : `fds ${sorted[0]}…${sorted[sorted.length - 1]}`;
}

export async function demoSocketCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, DEMO_SOCKET_USAGE, { clients: { type: 'string', default: '200' } });
  if (parsed === undefined) return 0;
  const count = parseInteger('clients', parsed.values.clients, 1, 4000);

  const listener = await ListenSocket.open({ host: '127.0.0.1', port: 0, backlog: 4096 });
  const { address, port } = listener.address();
  listener.disarm();
  console.log(`1. Opened a listening socket on ${address}:${port} (fd ${listener.fd}), then disarm(): no accept(), the socket stays in LISTEN.`);

  const clients = Array.from({ length: count }, () => connect(port));
  await Promise.all(clients.map((client) => client.connected));
  console.log(`2. ${count} clients connected: the kernel completed every handshake, and nobody called accept().`);

  const { queued, backlog, handshaking } = listener.pending({ handshakes: true });
  console.log(
    `3. pending() → queued: ${queued}, backlog: ${backlog}, handshaking: ${handshaking}` +
      `  (TCP_INFO on the listener; handshaking comes from sock_diag)`,
  );
  console.log('   Node\'s server.close() would now reset every one of them. Instead:');

  console.log('4. arm(): accept4() runs in batches, each delivered to JS in one call:');
  let served = 0;
  const allServed = new Promise<void>((resolve) => {
    let batch = 0;
    listener.arm((fds) => {
      batch++;
      console.log(`   batch ${batch}: ${String(fds.length).padStart(3)} connections (${fdRange(fds)})`);
      for (const fd of fds) {
        const socket = new net.Socket({ fd, readable: true, writable: true });
        socket.end(`hello, client ${++served}\n`);
      }
      if (served === count) resolve();
    });
  });
  await allServed;

  const replies = await Promise.allSettled(clients.map((client) => client.reply));
  const answered = replies.filter((r) => r.status === 'fulfilled' && r.value.startsWith('hello')).length;
  const reset = replies.filter((r) => r.status === 'rejected' && (r.reason as NodeJS.ErrnoException).code === 'ECONNRESET').length;
  console.log(`5. Every client read its greeting: ${answered} of ${count} answered, ${reset} reset.`);

  const after = listener.pending();
  listener.close();
  console.log(`6. Queue empty (queued: ${after.queued}), listener closed. closed = ${listener.closed}.`);
  for (const client of clients) client.socket.destroy();
  return answered === count ? 0 : 1;
}
