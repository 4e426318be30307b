import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Opened, acceptExactly, readEach, sleep, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe.each(['127.0.0.1', '::1'] as const)('SYN gate on %s', (host) => {
  test('a gated client stays connecting without an error; queued ones are still accepted; ungating lets it in', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host }));
    const { port } = listener.address();
    const queued = Array.from({ length: 3 }, (_, i) => opened.raw(port, { host, greeting: `queued-${i}\n` }));
    await waitFor('queued clients connected', () => queued.every((client) => client.connected));
    await waitFor('queued === 3', () => listener.pending().queued === 3);

    listener.gate(true);
    const gated = opened.raw(port, { host });
    // Past the client's first SYN retransmission (1 s): every SYN is dropped
    // silently, so the client neither connects nor sees a reset.
    await sleep(1200);
    expect(gated.connected).toBe(false);
    expect(gated.socket.connecting).toBe(true);
    expect(gated.errors).toEqual([]);
    expect(gated.closed).toBe(false);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 3, handshaking: 0 });

    const { fds } = await acceptExactly(listener, opened, 3);
    const greetings = await readEach(
      fds.map((fd) => opened.adoptFd(fd)),
      'queued-0\n'.length,
    );
    expect(greetings.sort()).toEqual(['queued-0\n', 'queued-1\n', 'queued-2\n']);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 0, handshaking: 0 });
    expect(gated.connected).toBe(false);
    expect(gated.errors).toEqual([]);

    listener.gate(false);
    const fresh = opened.raw(port, { host });
    await waitFor('a new client connects once the gate is off', () => fresh.connected);
    // The gated client was never reset: its next SYN retransmission (3 s after
    // its first SYN) gets through.
    await waitFor('the gated client connects on its retransmission', () => gated.connected, {
      tries: 200,
      intervalMs: 50,
    });
    expect(gated.errors).toEqual([]);
    expect(fresh.errors).toEqual([]);
  });

  test('a gated client that is destroyed while connecting leaves nothing queued', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host }));
    const { port } = listener.address();
    listener.gate(true);
    listener.gate(true);
    const gated = opened.raw(port, { host });
    await sleep(300);
    expect(gated.socket.connecting).toBe(true);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 0, handshaking: 0 });
    gated.socket.destroy();
    await waitFor('client closed', () => gated.closed);
    expect(gated.errors).toEqual([]);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 0, handshaking: 0 });

    // Ungating twice (no filter attached the second time) is not an error.
    listener.gate(false);
    listener.gate(false);
    const fresh = opened.raw(port, { host });
    await waitFor('client connected', () => fresh.connected);
    expect(fresh.errors).toEqual([]);
  });
});
