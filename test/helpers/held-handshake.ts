// A TCP client whose handshake stays in SYN_RECV on the listener until the
// test lets it complete (or never does: a dead handshake, like a spoofed SYN
// or a client that vanished). Needs python3.
import { spawn, type ChildProcess } from 'node:child_process';

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

export interface HeldResult {
  connected: boolean;
  error: string | null;
  response: string;
}

export function heldHandshakeClient(
  opened: { child<C extends ChildProcess>(child: C): C },
  port: number,
): Promise<{ go: () => void; result: Promise<HeldResult> }> {
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
        const result = exited.then(() => {
          const line = stdout.slice(stdout.indexOf('ready\n') + 6).trim();
          if (line === '') throw new Error(`the client printed no result: ${stderr}`);
          return JSON.parse(line) as HeldResult;
        });
        // A dead handshake is killed at the end of its test, with no result.
        result.catch(() => {});
        resolve({ go: () => child.stdin.write('go\n'), result });
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`python3 exited with ${code} before it was ready: ${stderr}`)));
  });
}
