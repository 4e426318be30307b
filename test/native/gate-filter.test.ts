// The SYN gate and socket filters that are not the gate's: a classic filter
// the socket already had (an adopted socket may come with one) runs behind
// the gate and is back when it comes off; a filter that cannot be read back
// (eBPF) or a locked one makes gate(true) throw and change nothing; and a
// connection accepted while gated does not keep the gate for its whole life.
// Filters are attached and read back by socket_filter.py on the same socket.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Resources, acceptExactly, run, sleep, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.dispose());

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
  const client = resources.connect(port, '127.0.0.1');
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
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    expect(await socketFilter(listener.fd, 'attach', JSON.stringify(USER))).toEqual({ ok: true });

    listener.gate(true);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: GATE_IN_FRONT_OF_USER });
    const gated = resources.connect(port, '127.0.0.1');
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
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    listener.gate(true);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: GATE_ALONE });
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: [] });
  });

  test('gate(false) on a socket that was never gated leaves its filter alone', async () => {
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    expect(await socketFilter(listener.fd, 'attach', JSON.stringify(USER))).toEqual({ ok: true });
    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: USER });
  });

  test('an eBPF filter cannot be read back: gate(true) throws EACCES and leaves it attached', async () => {
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
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
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
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

// A client whose socket filter drops everything it receives until a line on
// stdin: its SYN is answered (SYN_RECV on the listener), but the handshake
// completes only after the release, on the listener's next SYN-ACK
// retransmit. Released once the gate is on, the connection's socket is
// created while the listener carries the gate, and inherits it.
const HELD_CLIENT = `
import ctypes, select, socket, struct, sys
drop = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, 26, struct.pack('HL', 1, ctypes.addressof(drop)))
s.setblocking(False)
s.connect_ex(('127.0.0.1', int(sys.argv[1])))
print('ready', flush=True)
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, 27, struct.pack('i', 0))
select.select([], [s], [], 15)
print('connected' if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 else 'failed', flush=True)
sys.stdin.read()
`;

function heldClient(port: number): { ready: Promise<void>; release: () => void; output: () => string } {
  const child = resources.child(spawn('python3', ['-c', HELD_CLIENT, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`python3 exited with ${code}: ${stderr}`)));
  });
  return { ready, release: () => child.stdin.write('go\n'), output: () => stdout };
}

describe('connections accepted while gated', () => {
  test.each([
    ['no filter', undefined, []],
    ['a classic filter', USER, USER],
  ] as const)('with %s on the listener, get its filter back, not the gate', async (_name, user, expected) => {
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    if (user !== undefined) expect(await socketFilter(listener.fd, 'attach', JSON.stringify(user))).toEqual({ ok: true });
    const client = heldClient(port);
    await client.ready;
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 50,
      intervalMs: 100,
    });

    listener.gate(true);
    client.release();
    await waitFor('the held handshake completed into the queue', () => listener.pending().queued === 1, {
      tries: 200,
      intervalMs: 50,
    });
    const { fds } = await acceptExactly(listener, resources, 1);
    expect(await socketFilter(fds[0]!, 'read')).toEqual({ program: expected });
    await waitFor('the client connected', () => client.output().includes('connected'));

    listener.gate(false);
    expect(await socketFilter(listener.fd, 'read')).toEqual({ program: user ?? [] });
  });
});
