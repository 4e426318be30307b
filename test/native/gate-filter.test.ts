// The SYN gate and socket filters that are not the gate's: a classic filter
// the socket already had (an adopted socket may come with one) runs behind
// the gate and is back when it comes off; a filter that cannot be read back
// (eBPF) or a locked one makes gate(true) throw and change nothing; and a
// connection accepted while gated does not keep the gate for its whole life.
// Filters are attached and read back by socket_filter.py on the same socket.
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Opened, acceptExactly, run, sleep, waitFor } from '../helpers/kit.js';
import { heldHandshake } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

type Instruction = [code: number, jt: number, jf: number, k: number];
interface FilterState {
  program?: Instruction[];
  errno?: string;
  ok?: boolean;
}

const SOCKET_FILTER = path.join(__dirname, 'socket_filter.py');

async function socketFilter(fd: number, ...args: string[]): Promise<FilterState> {
  const result = await run('python3', [SOCKET_FILTER, ...args], { stdio: ['ignore', 'pipe', 'pipe', fd] });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as FilterState;
}

// `ld #len; ret a`: passes every packet whole, and is easy to tell apart.
const USER: Instruction[] = [
  [0x80, 0, 0, 0],
  [0x16, 0, 0, 0],
];
// ldb [13]; and #0x12; jeq #0x02 → next, else skip one; ret #0
const GATE_PREFIX: Instruction[] = [
  [0x30, 0, 0, 13],
  [0x54, 0, 0, 0x12],
  [0x15, 0, 1, 0x02],
  [0x06, 0, 0, 0],
];
const GATE_ALONE: Instruction[] = [...GATE_PREFIX, [0x06, 0, 0, 0xffffffff]];
// ld #0, then the user's program as if it ran alone (classic BPF starts with A = 0).
const GATE_IN_FRONT_OF_USER: Instruction[] = [...GATE_PREFIX, [0x00, 0, 0, 0], ...USER];

async function connects(port: number): Promise<void> {
  const client = opened.raw(port);
  await waitFor('client connected', () => client.connected);
  expect(client.errors).toEqual([]);
}

function caught(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}

describe('SYN gate and a filter the socket already has', () => {
  test('a classic filter runs behind the gate and is restored by gate(false)', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    expect(await socketFilter(listener.fd, 'attach', JSON.stringify(USER))).toEqual({ ok: true });

    listener.gate(true);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: GATE_IN_FRONT_OF_USER });
    const gated = opened.raw(port);
    await sleep(300);
    expect(gated.socket.connecting).toBe(true);
    listener.gate(true);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: GATE_IN_FRONT_OF_USER });

    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: USER });
    await connects(port);
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: USER });
  });

  test('without a filter, gate(false) leaves none', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    listener.gate(true);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: GATE_ALONE });
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: [] });
  });

  test('gate(false) on a socket that was never gated leaves its filter alone', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    expect(await socketFilter(listener.fd, 'attach', JSON.stringify(USER))).toEqual({ ok: true });
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: USER });
  });

  test('an eBPF filter cannot be read back: gate(true) throws EACCES and leaves it attached', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    const attached = await socketFilter(listener.fd, 'attach-ebpf');
    // Loading eBPF needs CAP_BPF where kernel.unprivileged_bpf_disabled is set.
    if (attached.errno === 'EPERM') return;
    expect(attached).toEqual({ ok: true });

    const error = caught(() => listener.gate(true));
    expect(error).toMatchObject({ code: 'EACCES', errno: -13, syscall: 'getsockopt' });
    expect(await socketFilter(listener.fd, 'read')).toEqual({ errno: 'EACCES', call: 'getsockopt' });
    await connects(port);
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ errno: 'EACCES', call: 'getsockopt' });
  });

  test.each([
    ['no filter', undefined],
    ['a classic filter', USER],
  ])('SO_LOCK_FILTER with %s: gate(true) throws EPERM and the socket is unchanged', async (_name, user) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    if (user !== undefined) expect(await socketFilter(listener.fd, 'attach', JSON.stringify(user))).toEqual({ ok: true });
    expect(await socketFilter(listener.fd, 'lock')).toEqual({ ok: true });

    const error = caught(() => listener.gate(true));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'EPERM', errno: -1, syscall: 'setsockopt' });
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: user ?? [] });
    await connects(port);
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: user ?? [] });
  });
});

// A client whose handshake is held in SYN_RECV until the test lets it go: its
// handshake completes only on the listener's next SYN-ACK retransmit.
// Released once the gate is on, the connection's socket is created while the
// listener carries the gate, and inherits it.
describe('connections accepted while gated', () => {
  test.each([
    ['no filter', undefined, []],
    ['a classic filter', USER, USER],
  ] as const)('with %s on the listener, get its filter back, not the gate', async (_name, user, expected) => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    if (user !== undefined) expect(await socketFilter(listener.fd, 'attach', JSON.stringify(user))).toEqual({ ok: true });
    const client = await heldHandshake(opened, port);
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 50,
      intervalMs: 100,
    });

    listener.gate(true);
    client.go();
    await waitFor('the held handshake completed into the queue', () => listener.pending().queued === 1, {
      tries: 200,
      intervalMs: 50,
    });
    const { fds } = await acceptExactly(listener, opened, 1);
    expect(await socketFilter(fds[0]!, 'read')).toEqual({ program: expected });
    expect(await client.result).toMatchObject({ connected: true });

    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: user ?? [] });
  });
});
