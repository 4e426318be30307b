import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, type HandshakeRequest } from '../../src/index.js';
import { Opened, acceptExactly, sleep, waitFor } from '../helpers/kit.js';
import { heldHandshake } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe('handshakes in progress', () => {
  test('handshaking is 0 on an idle listener, and pending() leaves it out unless asked', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    expect(listener.pending()).toEqual({ queued: 0, backlog: 511 });
    expect(listener.pending()).not.toHaveProperty('handshaking');
    expect(listener.pending({})).not.toHaveProperty('handshaking');
    expect(listener.pending({ handshakes: false })).not.toHaveProperty('handshaking');
    expect(listener.pending({ handshakes: true })).toEqual({ queued: 0, backlog: 511, handshaking: 0 });
  });

  test('completed connections are queued, not handshaking', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    const client = opened.raw(port);
    await waitFor('client connected', () => client.connected);
    await waitFor('queued === 1', () => listener.pending().queued === 1);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 1, handshaking: 0 });
    await acceptExactly(listener, opened, 1);
  });

  const CASES = [
    ['127.0.0.1', '127.0.0.1'],
    ['::1', '::1'],
    ['an IPv4 client of dual-stack ::', '::', '127.0.0.1'],
    ['an IPv6 client of dual-stack ::', '::', '::1'],
    ['an IPv4 client of v4-mapped ::ffff:127.0.0.1', '::ffff:127.0.0.1', '127.0.0.1'],
  ];

  /** `address:port` as handshakeRequests() keys print it. */
  const endpoint = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

  test.each(CASES)('a handshake held in SYN_RECV is counted (%s)', async (_name, host, clientHost = host) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host }));
    const { port } = listener.address();
    const held = await heldHandshake(opened, port, { host: clientHost });

    let handshaking = 0;
    await waitFor(
      'handshaking >= 1',
      () => {
        handshaking = listener.pending({ handshakes: true }).handshaking ?? 0;
        return handshaking >= 1;
      },
      { tries: 50, intervalMs: 100 },
    );
    expect(handshaking).toBe(1);
    expect(listener.pending().queued).toBe(0);
    held.end();
  });

  test.each(CASES)(
    'handshakeRequests(): its key, SYN-ACK retransmits growing, its timer counting down (%s)',
    async (_name, host, clientHost = host) => {
      const listener = opened.listenSocket(await ListenSocket.open({ host }));
      const { port } = listener.address();
      expect(listener.handshakeRequests()).toEqual([]);
      const { clientPort, end } = await heldHandshake(opened, port, { host: clientHost });
      // A request has its listener's family: an IPv4 client of an IPv6
      // listener shows with v4-mapped addresses. On loopback the client
      // connects from the address it connects to.
      const address = host.includes(':') && !clientHost.includes(':') ? `::ffff:${clientHost}` : clientHost;
      const key = `${endpoint(address, clientPort)}>${endpoint(address, port)}`;

      let requests: HandshakeRequest[] = [];
      await waitFor('one request', () => (requests = listener.handshakeRequests()).length === 1, { tries: 50, intervalMs: 100 });
      expect(requests).toEqual([{ key, retrans: expect.any(Number), expiresMs: expect.any(Number) }]);
      expect(listener.pending({ handshakes: true }).handshaking).toBe(1);

      // The client drops every SYN-ACK: the listener sends it again (after 1 s,
      // then backing off), each time counted in retrans.
      await waitFor('a SYN-ACK retransmit', () => (listener.handshakeRequests()[0]?.retrans ?? 0) >= 1, {
        tries: 100,
        intervalMs: 50,
      });
      const first = listener.handshakeRequests()[0]!;
      expect(first.key).toBe(key);
      // Between two retransmits the timer counts down.
      let countedDown = false;
      for (let i = 0; i < 10 && !countedDown; i++) {
        const before = listener.handshakeRequests()[0]!;
        await sleep(100);
        const after = listener.handshakeRequests()[0]!;
        expect(after.key).toBe(key);
        expect(after.retrans).toBeGreaterThanOrEqual(before.retrans);
        if (after.retrans === before.retrans && before.expiresMs > 0) {
          expect(after.expiresMs).toBeLessThan(before.expiresMs);
          countedDown = true;
        }
      }
      expect(countedDown).toBe(true);
      end();
    },
  );

  // sock_diag reports request sockets with no link to the listener that owns
  // them (no inode; the cookie is the request's own): it selects by local
  // address and port only. So members of one SO_REUSEPORT group, same address
  // and port, each see the requests of all — the kernel hashed the SYN to one
  // of them, and nothing here says which. A listener on another port is told
  // apart.
  test.each(CASES)('SO_REUSEPORT siblings both see a request only one of them owns (%s)', async (_name, host, clientHost = host) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host, reusePort: true }));
    const { port } = listener.address();
    const sibling = opened.listenSocket(await ListenSocket.open({ host, port, reusePort: true }));
    const elsewhere = opened.listenSocket(await ListenSocket.open({ host }));
    expect(sibling.address().port).toBe(port);
    const held = await heldHandshake(opened, port, { host: clientHost });

    await waitFor('the request', () => listener.handshakeRequests().length === 1, { tries: 50, intervalMs: 100 });
    const [request] = listener.handshakeRequests();
    expect(sibling.handshakeRequests().map((r) => r.key)).toEqual([request!.key]);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 0, handshaking: 1 });
    expect(sibling.pending({ handshakes: true })).toMatchObject({ queued: 0, handshaking: 1 });
    expect(elsewhere.handshakeRequests()).toEqual([]);
    expect(elsewhere.pending({ handshakes: true }).handshaking).toBe(0);
    held.end();
  });

  test("an IPv6-only listener does not count the requests of an IPv4 listener on the same port", async () => {
    const v4 = opened.listenSocket(await ListenSocket.open({ host: '0.0.0.0' }));
    const { port } = v4.address();
    const v6 = opened.listenSocket(await ListenSocket.open({ host: '::', port, ipv6Only: true }));
    const held = await heldHandshake(opened, port);
    await waitFor('the request', () => v4.handshakeRequests().length === 1, { tries: 50, intervalMs: 100 });
    expect(v4.pending({ handshakes: true }).handshaking).toBe(1);
    expect(v6.pending({ handshakes: true }).handshaking).toBe(0);
    expect(v6.handshakeRequests()).toEqual([]);
    held.end();
  });
});
