// Child process for test/close/user-code.test.ts: a real listener whose user
// code throws at one point of the close, or a close route the user takes in
// an unusual order. Run as `node user-code-child.mjs <dist entry> <scenario>`.
// Prints one JSON line: what the close did, the uncaught exceptions the
// process saw (reported, not fatal: the scenario counts them), and whether a
// new client was refused after the close. Bounded: after 15 s it prints what
// it has with `hung: true` and exits.
import http from 'node:http';
import net from 'node:net';
import { createRequire } from 'node:module';

const [entry, scenario] = process.argv.slice(2);
const { listen } = createRequire(import.meta.url)(entry);

const outcome = {
  scenario,
  uncaught: [],
  warnings: [],
  closeResolved: false,
  listenerClosed: false,
  serverClosed: false,
  serverCloseCallback: null,
  report: null,
  clientsAnswered: 0,
  clientErrors: [],
  newClient: null,
  hung: false,
};
process.on('uncaughtException', (error) => outcome.uncaught.push(error.message));
process.on('warning', (warning) => outcome.warnings.push(`${warning.name}: ${warning.message}`));

function done() {
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
  process.exit(0);
}
setTimeout(() => {
  outcome.hung = true;
  done();
}, 15_000).unref();

/** A client that connects and waits: 'connected', or the error code. */
function connectOutcome(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (error) => resolve(error.code ?? error.message));
  });
}

/** Keep-alive clients with one answered request each, holding their connection open. */
async function keepAliveClients(port, count) {
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', (error) => outcome.clientErrors.push(error.code ?? error.message));
    await new Promise((resolve) => {
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk) => {
        text += chunk;
        if (text.includes('\r\n\r\nok')) {
          outcome.clientsAnswered++;
          resolve();
        }
      });
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    sockets.push(socket);
  }
  return sockets;
}

async function main() {
  const handler = (_request, response) => response.end('ok');
  const server = scenario.startsWith('net-') ? net.createServer() : http.createServer(handler);
  const controller = new AbortController();
  const options = { host: '127.0.0.1', http: { quietWindow: 50, linger: 50 } };
  if (scenario === 'signal-then-resume') options.signal = controller.signal;
  if (scenario === 'net-ondrain-throws') {
    options.onDrain = () => {
      throw new Error('onDrain threw');
    };
  }
  const listener = await listen(server, options);
  const { port } = listener.address();
  server.on('close', () => (outcome.serverClosed = true));
  listener.on('close', () => (outcome.listenerClosed = true));
  const held = [];
  if (scenario.startsWith('net-')) {
    server.on('connection', (socket) => socket.on('error', () => {}));
    for (let i = 0; i < 2; i++) {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.on('error', (error) => outcome.clientErrors.push(error.code ?? error.message));
      socket.on('end', () => socket.end());
      await new Promise((resolve) => socket.on('connect', resolve));
      held.push(socket);
    }
    while (listener.count < 3) await new Promise((resolve) => setTimeout(resolve, 5));
  } else {
    held.push(...(await keepAliveClients(port, 2)));
  }

  let closing;
  switch (scenario) {
    case 'draining-throws':
      listener.on('draining', () => {
        throw new Error("'draining' listener threw");
      });
      closing = listener.close({ timeout: 5000 });
      break;
    case 'draining-throws-server-close':
      listener.on('draining', () => {
        throw new Error("'draining' listener threw");
      });
      server.close((error) => (outcome.serverCloseCallback = error === undefined ? 'ok' : error.code ?? error.message));
      closing = listener.close();
      break;
    case 'close-listener-throws':
      listener.on('close', () => {
        throw new Error("'close' listener threw");
      });
      closing = listener.close({ timeout: 5000 });
      break;
    case 'net-ondrain-throws':
      closing = listener.close({ timeout: 200, forceTimeout: 200 });
      break;
    case 'signal-then-resume': {
      controller.abort();
      listener.resume();
      // Accepting again: a client is served, then a plain close.
      outcome.afterResume = listener.state;
      await new Promise((resolve) => setTimeout(resolve, 50));
      closing = listener.close({ timeout: 5000 });
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
  outcome.report = await closing;
  outcome.closeResolved = true;
  outcome.newClient = await connectOutcome(port);
  for (const socket of held) socket.destroy();
  // The server's 'close' (Node's own, on a later tick) and anything reported on its own tick.
  await new Promise((resolve) => setTimeout(resolve, 50));
  done();
}

main().catch((error) => {
  outcome.fatal = String(error?.stack ?? error);
  done();
});
