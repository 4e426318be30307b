// Issue 5, raw servers: a net.Server's or tls.Server's connections belong to
// no protocol drain. The `onDrain` hook gets each connection exactly once —
// those open when the drain starts and those accepted during it (stragglers);
// without a hook a connection runs until the deadline and is then ended
// gently (FIN, the client sees 'end').
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type Listener } from '../../src/index.js';
import { Counter, HOST, Opened, RawClient, certificate, protocolOf, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** A bounded wait for the kernel to queue `n` connections for a paused listener. */
async function queued(listener: Listener<net.Socket>, n: number): Promise<void> {
  await waitFor(`${n} queued`, () => listener.pending().queued >= n, { tries: 1_000, intervalMs: 10 });
  expect(listener.pending().queued).toBe(n);
}

describe.each([
  { name: 'net.Server', secure: false },
  { name: 'tls.Server', secure: true },
])('$name', ({ secure }) => {
  /** An echo server; `established` counts connections whose (TLS) session is up. */
  function echoServer() {
    const established = new Counter();
    const echo = (socket: net.Socket): void => {
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
      socket.on('error', () => {});
      established.add();
    };
    const server = secure ? tls.createServer(certificate(), echo) : net.createServer(echo);
    return { server, established };
  }

  /** Connects and, for TLS, completes the handshake; then one echo round trip. */
  async function connected(port: number): Promise<RawClient> {
    const client = opened.raw(port, { secure });
    client.socket.write('hi');
    await client.until((c) => c.data === 'hi', 'the echo');
    client.data = '';
    return client;
  }

  test('the hook is called once per connection: those open at the drain start and a straggler accepted during it', async () => {
    const { server } = echoServer();
    const calls = new Map<net.Socket, number>();
    const listener = opened.listener(
      await listen(server, {
        host: HOST,
        onDrain(socket) {
          calls.set(socket, (calls.get(socket) ?? 0) + 1);
          socket.end('bye');
        },
      }),
    );
    const port = listener.address().port;
    const open = [await connected(port), await connected(port)];
    // The straggler: queued in the kernel while the listener is paused, so
    // the drain's sweep accepts it.
    listener.pause();
    const straggler = opened.raw(port, { secure });
    await queued(listener, 1);

    const closing = listener.close({ timeout: 600_000 });
    for (const client of [...open, straggler]) {
      await client.endAfterServer();
    }
    const report = await opened.settled(listener, closing);

    expect([...calls.values()]).toEqual([1, 1, 1]);
    // A TLS connection is hooked as its TLS socket (the straggler's once its
    // handshake, begun during the drain, is done).
    expect([...calls.keys()].every((socket) => socket instanceof tls.TLSSocket)).toBe(secure);
    for (const client of [...open, straggler]) {
      expect(client.data).toBe('bye');
      expect(client.errors).toEqual([]);
    }
    expect(protocolOf(report)).toEqual({ drainHooks: 3 });
    expect(report).toMatchObject({ openAtClose: 2, accepted: 1, served: 3, ended: 0, destroyed: 0 });
  });

  test('without a hook a connection keeps running while draining and leaves when its client does', async () => {
    const { server } = echoServer();
    const listener = opened.listener(await listen(server, { host: HOST }));
    const client = await connected(listener.address().port);

    const closing = listener.close({ timeout: 600_000 });
    client.socket.write('still here');
    await client.until((c) => c.data === 'still here', 'the echo while draining');
    await client.endFirst();
    const report = await opened.settled(listener, closing);

    expect(client.errors).toEqual([]);
    expect(protocolOf(report)).toEqual({ drainHooks: 0 });
    expect(report).toMatchObject({ served: 1, ended: 0, destroyed: 0 });
  });

  test('without a hook a connection is ended gently at the deadline: the client sees a FIN, not a reset', async () => {
    const { server } = echoServer();
    const listener = opened.listener(await listen(server, { host: HOST }));
    const client = await connected(listener.address().port);

    const closing = listener.close({ timeout: 0, forceTimeout: 600_000 });
    await client.endAfterServer();
    const report = await opened.settled(listener, closing);

    expect(client.ended).toBe(true);
    expect(client.errors).toEqual([]);
    expect(report).toMatchObject({ openAtClose: 1, ended: 1, destroyed: 0 });
  });
});

test('tls.Server: a connection whose handshake is in progress at the drain start is hooked once, when the handshake is done', async () => {
  const server = tls.createServer(certificate(), (socket) => socket.on('error', () => {}));
  const seen = new Counter();
  server.on('connection', () => seen.add());
  const calls: net.Socket[] = [];
  const listener = opened.listener(
    await listen(server, {
      host: HOST,
      onDrain(socket) {
        calls.push(socket);
        socket.end('bye');
      },
    }),
  );
  // Accepted before the close, its ClientHello sent only after.
  const raw = opened.track(net.connect({ host: HOST, port: listener.address().port }));
  await seen.reached(1, 'the server to see the connection');

  const closing = listener.close({ timeout: 600_000 });
  expect(calls).toHaveLength(0);
  const client = opened.track(
    new RawClient(tls.connect({ socket: raw, ca: certificate().cert, servername: 'localhost' })),
  );
  await client.endAfterServer();
  const report = await opened.settled(listener, closing);

  expect(calls).toHaveLength(1);
  expect(calls[0]).toBeInstanceOf(tls.TLSSocket);
  expect(client.data).toBe('bye');
  expect(client.errors).toEqual([]);
  expect(protocolOf(report)).toEqual({ drainHooks: 1 });
  expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
});
