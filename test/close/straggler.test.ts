// Issue 4, test 6: connections that land after draining began are drained
// exactly once — one whose handshake was still in SYN_RECV when close()
// started, and a keep-alive connection that sends its next request during the
// drain.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Opened, waitFor } from '../helpers/close-fixtures.js';

const opened = new Opened();
afterEach(() => opened.dispose());

// A client whose socket filter (SO_ATTACH_FILTER = 26, classic BPF `ret #0`)
// drops every packet it receives, the SYN-ACK included: its handshake stays
// in SYN_RECV on the listener. On "go" it detaches the filter
// (SO_DETACH_FILTER = 27, int optval), so the listener's next SYN-ACK
// retransmission (about 1 s, 3 s, 7 s after the SYN) completes it; it then
// sends one request and prints what it read, as JSON.
const HELD_HANDSHAKE_CLIENT = `
import ctypes, errno, json, select, socket, struct, sys
code = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0))
program = struct.pack('HL', 1, ctypes.addressof(code))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, 26, program)
s.setblocking(False)
s.connect_ex(('127.0.0.1', int(sys.argv[1])))
print('ready', flush=True)
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, 27, struct.pack('i', 0))
result = {'connected': False, 'error': None, 'response': ''}
_, writable, _ = select.select([], [s], [], 20)
err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
if not writable:
    result['error'] = 'connect timeout'
elif err:
    result['error'] = errno.errorcode.get(err, str(err))
else:
    result['connected'] = True
    s.setblocking(True)
    s.settimeout(20)
    data = b''
    try:
        s.sendall(b'GET /straggler HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n')
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        result['error'] = errno.errorcode.get(e.errno, str(e)) if e.errno else str(e)
    result['response'] = data.decode('latin1')
print(json.dumps(result), flush=True)
`;

interface HeldResult {
  connected: boolean;
  error: string | null;
  response: string;
}

function heldHandshakeClient(port: number): Promise<{ go: () => void; result: Promise<HeldResult> }> {
  const child = opened.child(spawn('python3', ['-c', HELD_HANDSHAKE_CLIENT, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const wasReady = stdout.includes('ready\n');
      stdout += chunk;
      if (!wasReady && stdout.includes('ready\n')) {
        resolve({
          go: () => child.stdin.write('go\n'),
          result: exited.then(() => {
            const line = stdout.slice(stdout.indexOf('ready\n') + 6).trim();
            if (line === '') throw new Error(`the client printed no result: ${stderr}`);
            return JSON.parse(line) as HeldResult;
          }),
        });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`python3 exited with ${code} before it was ready: ${stderr}`)));
  });
}

describe('stragglers', () => {
  test('a handshake in SYN_RECV when close() starts is waited for, accepted once and served with Connection: close', async () => {
    const server = http.createServer((_request, response) => response.end('served while draining\n'));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const connections: boolean[] = [];
    listener.on('connection', () => connections.push(listener.state === 'draining'));
    const client = await heldHandshakeClient(listener.address().port);
    await waitFor('the handshake in SYN_RECV', () => listener.pending({ handshakes: true }).handshaking === 1, {
      tries: 100,
      intervalMs: 50,
    });

    const closing = listener.close({ timeout: 25_000 });
    expect(listener.state).toBe('draining');
    expect(listener.count).toBe(1);
    client.go();

    const result = await client.result;
    const report = await closing;
    await opened.closed(listener);
    expect(result.error).toBeNull();
    expect(result.connected).toBe(true);
    expect(result.response).toMatch(/^HTTP\/1\.1 200 /);
    expect(result.response).toMatch(/\r\nconnection: close\r\n/i);
    expect(result.response.endsWith('served while draining\n')).toBe(true);
    expect(connections).toEqual([true]);
    expect(report).toMatchObject({
      queuedAtClose: 0,
      handshakingAtClose: 1,
      openAtClose: 0,
      accepted: 1,
      served: 1,
      ended: 0,
      destroyed: 0,
    });
  });

  test('a keep-alive connection whose next request comes during the drain is answered with Connection: close, counted once', async () => {
    const server = http.createServer((request, response) => response.end(`${request.url}\n`));
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const { port } = listener.address();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<net.Socket>();
    const get = (path: string) =>
      new Promise<{ connection: string | undefined; body: string }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path, agent }, (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve({ connection: response.headers.connection, body }));
        });
        req.on('socket', (socket: net.Socket) => sockets.add(opened.socket(socket)));
        req.on('error', reject);
      });

    expect(await get('/before')).toEqual({ connection: 'keep-alive', body: '/before\n' });
    const closing = listener.close({ timeout: 25_000 });
    const during = get('/during');
    expect(await during).toEqual({ connection: 'close', body: '/during\n' });
    const report = await closing;
    await opened.closed(listener);
    agent.destroy();
    expect(sockets.size).toBe(1);
    expect(report).toMatchObject({ openAtClose: 1, accepted: 0, served: 1, ended: 0, destroyed: 0 });
  });
});
