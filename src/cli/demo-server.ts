// The demo's server, in a process of its own (forked by demo.ts) so that its
// event loop is not shared with the clients, as in production. It closes in
// one of two ways when told to: Node's server.close(), or listener.close().
// Messages over IPC: see ServerMessage and ParentMessage.
import type net from 'node:net';
import { ListenSocket, listen, type CloseReport, type Listener } from '../index.js';
import { createDemoServer, type DemoProtocol } from './demo-app.js';

export type { DemoProtocol } from './demo-app.js';
export type Shutdown = 'server.close()' | 'listener.close()';

/** The accept queue at the moment of close (handshakes in SYN_RECV included). */
export interface PendingAtClose {
  queued: number;
  handshaking: number | null;
  /** The queue's cap (server.close() only). */
  backlog: number | null;
}

export type ParentMessage =
  | { type: 'start'; protocol: DemoProtocol; shutdown: Shutdown; key: string; cert: string }
  | { type: 'close'; timeout: number };

export type ServerMessage =
  | { type: 'ready'; port: number }
  | { type: 'sample'; queued: number; open: number }
  | { type: 'closing' }
  | {
      type: 'closed';
      durationMs: number;
      pendingAtClose: PendingAtClose;
      report: CloseReport | null;
      /** server.close(): connections destroyed at the deadline. */
      destroyed: number;
    }
  | { type: 'failed'; message: string };

const SAMPLE_MS = 100;

function send(message: ServerMessage): void {
  process.send?.(message);
}

async function start(message: Extract<ParentMessage, { type: 'start' }>): Promise<void> {
  const server = createDemoServer(message.protocol, message.key, message.cert);
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Errors of single connections (a client that went away) are not the demo's business.
  server.on('tlsClientError', () => {});
  server.on('clientError', (_error: Error, socket: net.Socket) => socket.destroy());

  let listener: Listener<net.Socket> | undefined;
  // server.close() variant: a duplicate of Node's listening fd, only to read
  // the queue (TCP_INFO). It is closed before server.close(): while it is
  // open the socket would stay in LISTEN (and keep its queue).
  let observer: ListenSocket | undefined;
  let port: number;
  if (message.shutdown === 'listener.close()') {
    listener = await listen(server, { host: '127.0.0.1', port: 0 });
    port = listener.address().port;
  } else {
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 511 }, resolve));
    port = (server.address() as net.AddressInfo).port;
    observer = ListenSocket.adopt(server);
  }

  const sampler = setInterval(() => {
    let queued: number | undefined;
    try {
      if (listener !== undefined && listener.state !== 'closed') queued = listener.pending().queued;
      else if (observer !== undefined && !observer.closed) queued = observer.pending().queued;
    } catch {
      queued = undefined;
    }
    if (queued !== undefined) send({ type: 'sample', queued, open: sockets.size });
  }, SAMPLE_MS);

  process.on('message', (next: ParentMessage) => {
    if (next.type !== 'close') return;
    const began = performance.now();
    if (listener !== undefined) {
      send({ type: 'closing' });
      listener.close({ timeout: next.timeout, forceTimeout: 1000 }).then(
        (report) => {
          clearInterval(sampler);
          // listener.close() reads the queue itself, right after the SYN gate is on.
          const pendingAtClose = { queued: report.queuedAtClose, handshaking: report.handshakingAtClose, backlog: null };
          send({ type: 'closed', durationMs: performance.now() - began, pendingAtClose, report, destroyed: 0 });
        },
        (error: Error) => send({ type: 'failed', message: error.message }),
      );
      return;
    }
    // What pending() would have shown, then Node's close in the same tick.
    const pending = observer!.pending({ handshakes: true });
    const pendingAtClose = { queued: pending.queued, handshaking: pending.handshaking ?? null, backlog: pending.backlog };
    observer!.close();
    // At the deadline, what an application's shutdown timer does: destroy what is left.
    let destroyed = 0;
    const deadline = setTimeout(() => {
      for (const socket of sockets) {
        destroyed++;
        socket.destroy();
      }
    }, next.timeout);
    server.close(() => {
      clearTimeout(deadline);
      clearInterval(sampler);
      send({ type: 'closed', durationMs: performance.now() - began, pendingAtClose, report: null, destroyed });
    });
    send({ type: 'closing' });
  });
  send({ type: 'ready', port });
}

process.once('message', (message: ParentMessage) => {
  if (message.type !== 'start') return;
  start(message).catch((error: Error) => {
    send({ type: 'failed', message: error.stack ?? error.message });
    process.exitCode = 1;
    process.disconnect?.();
  });
});
// The parent is gone (or done with us): nothing left to serve.
process.on('disconnect', () => process.exit(0));
