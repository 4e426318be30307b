import { spawn } from 'node:child_process';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Resources, acceptExactly, waitFor } from './helpers.js';

const resources = new Resources();
afterEach(() => resources.dispose());

// A client whose socket filter (SO_ATTACH_FILTER = 26, classic BPF `ret #0`)
// drops every packet it receives, the SYN-ACK included: the client stays in
// SYN_SENT retransmitting its SYN, and the listener keeps the handshake in
// SYN_RECV. sock_fprog is { unsigned short len; struct sock_filter *filter }.
const HOLD_HANDSHAKE = `
import ctypes, socket, struct, sys
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
code = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0))
program = struct.pack('HL', 1, ctypes.addressof(code))
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, 26, program)
s.setblocking(False)
s.connect_ex((sys.argv[1], int(sys.argv[2])))
print('ready', flush=True)
sys.stdin.read()
`;

/** Starts a client whose handshake never completes; resolves once its SYN is sent. */
function holdHandshake(host: string, port: number): Promise<() => void> {
  const child = resources.child(spawn('python3', ['-c', HOLD_HANDSHAKE, host, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (chunk.includes('ready')) resolve(() => child.stdin.end());
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`python3 exited with ${code}: ${stderr}`)));
  });
}

describe('handshakes in progress', () => {
  test('handshaking is 0 on an idle listener, and pending() leaves it out unless asked', async () => {
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    expect(listener.pending()).toEqual({ queued: 0, backlog: 511 });
    expect(listener.pending()).not.toHaveProperty('handshaking');
    expect(listener.pending({})).not.toHaveProperty('handshaking');
    expect(listener.pending({ handshakes: false })).not.toHaveProperty('handshaking');
    expect(listener.pending({ handshakes: true })).toEqual({ queued: 0, backlog: 511, handshaking: 0 });
  });

  test('completed connections are queued, not handshaking', async () => {
    const listener = resources.listener(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    const client = resources.connect(port, '127.0.0.1');
    await waitFor('client connected', () => client.connected);
    await waitFor('queued === 1', () => listener.pending().queued === 1);
    expect(listener.pending({ handshakes: true })).toMatchObject({ queued: 1, handshaking: 0 });
    await acceptExactly(listener, resources, 1);
  });

  test.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::1', '::1'],
    ['an IPv4 client of dual-stack ::', '::', '127.0.0.1'],
    ['an IPv6 client of dual-stack ::', '::', '::1'],
    ['an IPv4 client of v4-mapped ::ffff:127.0.0.1', '::ffff:127.0.0.1', '127.0.0.1'],
  ])('a handshake held in SYN_RECV is counted (%s)', async (_name, host, clientHost = host) => {
    const listener = resources.listener(await ListenSocket.open({ host }));
    const other = resources.listener(await ListenSocket.open({ host }));
    const { port } = listener.address();
    const release = await holdHandshake(clientHost, port);

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
    // Another listener's handshakes are not this one's.
    expect(other.pending({ handshakes: true }).handshaking).toBe(0);
    release();
  });
});
