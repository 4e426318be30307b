// SO_REUSEPORT groups: the member count through sock_diag, SO_REUSEPORT as
// inspect() reads it, steering new SYNs to one member (DESIGN §2.5), and the
// restart pattern built on it: steer to the new member, sweep and close the
// old one, with no client reset.
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';
import { HOST, Opened, sleep, waitFor, type RawClient } from '../helpers/kit.js';

const binding = loadBinding();
const opened = new Opened();
afterEach(() => opened.dispose());

async function group(size: number): Promise<{ members: ListenSocket[]; port: number }> {
  const first = opened.listenSocket(await ListenSocket.open({ host: HOST, reusePort: true }));
  const { port } = first.address();
  const members = [first];
  while (members.length < size) members.push(opened.listenSocket(await ListenSocket.open({ host: HOST, port, reusePort: true })));
  return { members, port };
}

/** Connects `count` clients and waits until the group's queues hold them all. */
async function queueClients(members: ListenSocket[], port: number, count: number): Promise<RawClient[]> {
  const before = members.reduce((sum, member) => sum + member.pending().queued, 0);
  const clients = Array.from({ length: count }, () => opened.raw(port));
  await waitFor(`${count} connections queued`, () => members.reduce((sum, member) => sum + member.pending().queued, 0) === before + count);
  expect(clients.flatMap((client) => client.errors)).toEqual([]);
  return clients;
}

describe('reusePortMembers()', () => {
  test('counts the LISTEN sockets on the address and port, itself included', async () => {
    const first = binding.open(4, HOST, 0, 16, true, false);
    const { port } = first.address();
    const second = binding.open(4, HOST, port, 16, true, false);
    // Not members: another port, and a wildcard on the same port.
    const elsewhere = binding.open(4, HOST, 0, 16, true, false);
    const wildcard = binding.open(4, '0.0.0.0', port, 16, true, false);
    try {
      expect(first.reusePortMembers()).toBe(2);
      expect(second.reusePortMembers()).toBe(2);
      expect(elsewhere.reusePortMembers()).toBe(1);
      expect(wildcard.reusePortMembers()).toBe(1);
      second.close();
      expect(first.reusePortMembers()).toBe(1);
    } finally {
      for (const handle of [first, second, elsewhere, wildcard]) handle.close();
    }
  });

  test('IPv6: a dual-stack member group on ::1', async () => {
    const first = binding.open(6, '::1', 0, 16, true, false);
    const { port } = first.address();
    const second = binding.open(6, '::1', port, 16, true, false);
    try {
      expect(first.reusePortMembers()).toBe(2);
      expect(second.reusePortMembers()).toBe(2);
    } finally {
      first.close();
      second.close();
    }
  });

  test('ListenSocket: reusePortSiblings() 1 on each of two members, 0 once one closes; 0 without SO_REUSEPORT', async () => {
    const { members } = await group(2);
    expect(members.map((member) => member.reusePortSiblings())).toEqual([1, 1]);
    members[1]!.close();
    expect(members[0]!.reusePortSiblings()).toBe(0);
    const plain = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    expect(plain.reusePortSiblings()).toBe(0);
  });
});

describe('inspect() reads SO_REUSEPORT', () => {
  test('set on a member, clear on a plain listener and a Node server; adopt() keeps what it read', async () => {
    const { members } = await group(1);
    const plain = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    expect(binding.inspect(members[0]!.fd)).toMatchObject({ listening: true, reusePort: true });
    expect(binding.inspect(plain.fd)).toMatchObject({ listening: true, reusePort: false });
    expect(opened.listenSocket(ListenSocket.adopt(members[0]!.fd)).reusePort).toBe(true);
    expect(opened.listenSocket(ListenSocket.adopt(plain.fd)).reusePort).toBe(false);

    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    try {
      const adopted = opened.listenSocket(ListenSocket.adopt(server));
      expect(adopted.reusePort).toBe(false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('steer()', () => {
  test('steer(1) sends every new connection to the member bound second, steer(0) to the first', async () => {
    const { members, port } = await group(2);
    const [first, second] = members as [ListenSocket, ListenSocket];
    // The program belongs to the group: set through either member.
    first.steer(1);
    await queueClients(members, port, 16);
    expect([first.pending().queued, second.pending().queued]).toEqual([0, 16]);

    second.steer(0);
    await queueClients(members, port, 16);
    expect([first.pending().queued, second.pending().queued]).toEqual([16, 16]);
  });

  test('steer(-1) detaches the program: the hash spreads connections again; detaching twice is fine', async () => {
    const { members, port } = await group(2);
    const [first, second] = members as [ListenSocket, ListenSocket];
    first.steer(0);
    first.steer(-1);
    first.steer(-1);
    // Probabilistic: with 64 connections (distinct source ports), the chance
    // that the hash puts all of them on one of two members is 2 * 2^-64 = 2^-63.
    await queueClients(members, port, 64);
    expect(first.pending().queued).toBeGreaterThan(0);
    expect(second.pending().queued).toBeGreaterThan(0);
  });

  test('without SO_REUSEPORT there is no group to steer: EINVAL', async () => {
    const plain = opened.listenSocket(await ListenSocket.open({ host: HOST }));
    expect(() => plain.steer(0)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'setsockopt' }));
  });
});

describe('restart within a SO_REUSEPORT group', () => {
  // Old member with a queue; new member bound and accepting; old steers every
  // new SYN to new, sweeps its queue with shutdown in the same step, closes.
  // Clients keep connecting throughout; each sends a byte and reads one back
  // from whichever member accepted it.
  test('steer to the new member, sweep({ shutdown: true }), close: no client of a burst is reset', async () => {
    const served: Record<'old' | 'new', number> = { old: 0, new: 0 };
    const serve = (which: 'old' | 'new', fds: number[]): void => {
      for (const fd of fds) {
        served[which]++;
        const socket = opened.adoptFd(fd);
        socket.on('error', () => {});
        socket.once('data', () => socket.end('y'));
      }
    };
    const results: Promise<string>[] = [];
    let port = 0;
    const echo = (): void => {
      results.push(
        new Promise((resolve) => {
          const socket = opened.track(net.connect({ port, host: HOST }));
          let reply = '';
          socket.on('connect', () => socket.write('x'));
          socket.on('data', (chunk) => (reply += chunk.toString()));
          socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
          socket.on('close', () => resolve(reply === 'y' ? 'ok' : `closed after ${JSON.stringify(reply)}`));
        }),
      );
    };
    const old = opened.listenSocket(await ListenSocket.open({ host: HOST, reusePort: true }));
    port = old.address().port;
    let bursting = true;
    const burst = (async () => {
      while (bursting) {
        for (let i = 0; i < 4; i++) echo();
        await sleep(5);
      }
    })();
    await waitFor('connections queued on the old member', () => old.pending().queued >= 8);
    const fresh = opened.listenSocket(await ListenSocket.open({ host: HOST, port, reusePort: true }));
    fresh.arm((fds) => serve('new', fds));
    await sleep(20);

    old.steer(1);
    const { fds, error } = old.sweep({ shutdown: true });
    expect(error).toBeNull();
    serve('old', fds);
    old.close();

    await sleep(50);
    bursting = false;
    await burst;
    const outcomes = await Promise.all(results);
    expect(outcomes.filter((outcome) => outcome !== 'ok')).toEqual([]);
    expect(served.old).toBeGreaterThanOrEqual(8);
    expect(served.new).toBeGreaterThan(0);
    expect(served.old + served.new).toBe(outcomes.length);
  });
});
