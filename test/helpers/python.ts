// python3 peers for what Node cannot do itself: read a socket's TCP options
// (getsockopt), hold a client's handshake in SYN_RECV, receive AF_UNIX
// datagrams (Node's dgram has no AF_UNIX).
import { spawn } from 'node:child_process';
import { run, Lines } from './children.js';
import { HOST } from './clients.js';
import type { Opened } from './opened.js';

export interface TcpOptions {
  /** TCP_NODELAY (0 or 1). */
  nodelay: number;
  /** SO_KEEPALIVE (0 or 1). */
  keepalive: number;
  /** TCP_KEEPIDLE in seconds. */
  keepidle: number;
}

// The child inherits the socket as its fd 3. Its copy is detached, never
// closed with a shutdown, so the connection is untouched.
const GETSOCKOPT = `
import json, socket
s = socket.socket(fileno=3)
out = {
  'nodelay': s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
  'keepalive': s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
  'keepidle': s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
}
s.detach()
print(json.dumps(out))
`;

/** The TCP options of one of this process's socket fds. */
export async function tcpOptions(fd: number): Promise<TcpOptions> {
  const result = await run('python3', ['-c', GETSOCKOPT], { stdio: ['ignore', 'pipe', 'pipe', fd], killAfterMs: 15_000 });
  if (result.code !== 0) throw new Error(`python3 getsockopt failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as TcpOptions;
}

// A client whose socket filter (SO_ATTACH_FILTER = 26, classic BPF `ret #0`;
// sock_fprog is { unsigned short len; struct sock_filter *filter }) drops
// every packet it receives, the SYN-ACK included: it stays in SYN_SENT
// retransmitting its SYN, and the listener keeps the handshake in SYN_RECV,
// as for a spoofed SYN or a client that vanished. On "go" it detaches the
// filter (SO_DETACH_FILTER = 27, int optval), so the listener's next SYN-ACK
// retransmission (about 1 s, 3 s, 7 s after the SYN) completes the
// handshake; with a request it sends it, reads until EOF and closes. It
// prints what it saw as JSON, then holds on until stdin's EOF.
const HELD_HANDSHAKE = `
import ctypes, errno, json, select, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
request = sys.argv[3].encode('latin1') if len(sys.argv) > 3 else None
code = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0))
program = struct.pack('HL', 1, ctypes.addressof(code))
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, 26, program)
s.setblocking(False)
s.connect_ex((host, port))
print(json.dumps({'clientPort': s.getsockname()[1]}), flush=True)
if sys.stdin.readline() == '':
    sys.exit(0)
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
    if request is not None:
        s.setblocking(True)
        s.settimeout(20)
        data = b''
        try:
            s.sendall(request)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as e:
            result['error'] = errno.errorcode.get(e.errno, str(e)) if e.errno else str(e)
        result['response'] = data.decode('latin1')
        s.close()
print(json.dumps(result), flush=True)
sys.stdin.read()
`;

export interface HeldResult {
  connected: boolean;
  error: string | null;
  response: string;
}

export interface HeldHandshake {
  /** The client's local port. */
  clientPort: number;
  /** Lets the handshake complete. */
  go(): void;
  /** What the client saw once it went (bounded). */
  readonly result: Promise<HeldResult>;
  /** Ends the client (stdin's EOF). */
  end(): void;
}

/** A client of `host`:`port` whose handshake stays in SYN_RECV until go(); resolves once its SYN is sent. */
export async function heldHandshake(
  opened: Opened,
  port: number,
  { host = HOST, request }: { host?: string; request?: string } = {},
): Promise<HeldHandshake> {
  const args = ['-c', HELD_HANDSHAKE, host, String(port), ...(request !== undefined ? [request] : [])];
  const child = opened.child(spawn('python3', args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = new Lines(child.stdout, (line) => JSON.parse(line) as { clientPort: number } | HeldResult);
  const exited = new Promise<never>((_resolve, reject) =>
    child.on('close', (code) => reject(new Error(`python3 exited with ${code} after ${JSON.stringify(lines.items)}: ${stderr}`))),
  );
  exited.catch(() => {});
  const ready = (await Promise.race([lines.next('the held client to send its SYN'), exited])) as { clientPort: number };
  let result: Promise<HeldResult> | undefined;
  return {
    clientPort: ready.clientPort,
    go: () => child.stdin.write('go\n'),
    // Bounded from the first look, after go(): a dead handshake never reports.
    get result() {
      result ??= Promise.race([lines.next('the held client to report'), exited]) as Promise<HeldResult>;
      return result;
    },
    end: () => child.stdin.end(),
  };
}

// Binds an AF_UNIX datagram socket to each address (a path, or '@name' for
// an abstract name) and prints each datagram received as JSON.
const RECEIVER = `
import json, select, socket, sys
sockets = {}
for address in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind('\\0' + address[1:] if address.startswith('@') else address)
    sockets[s] = 'abstract' if address.startswith('@') else 'path'
print(json.dumps({'ready': True}), flush=True)
while True:
    readable, _, _ = select.select(list(sockets), [], [], 30)
    if not readable:
        break
    for s in readable:
        print(json.dumps({'to': sockets[s], 'data': s.recv(65536).decode()}), flush=True)
`;

export interface Datagram {
  to: 'path' | 'abstract';
  data: string;
}

export interface NotifyReceiver {
  /** The datagrams received so far. */
  received(): Datagram[];
  /** Whether a datagram said `state` (one of its lines). */
  saw(state: string): boolean;
  /** The datagrams, once `count` have arrived (bounded). */
  until(count: number): Promise<Datagram[]>;
}

/** A receiver of sd_notify datagrams on `addresses`; resolves once it is bound. */
export async function notifyReceiver(opened: Opened, addresses: string[]): Promise<NotifyReceiver> {
  const child = opened.child(spawn('python3', ['-c', RECEIVER, ...addresses], { stdio: ['ignore', 'pipe', 'inherit'] }));
  // The first line says the receiver is bound; each one after it is a datagram.
  const lines = new Lines(child.stdout, (line) => JSON.parse(line) as Datagram);
  const exited = new Promise<never>((_resolve, reject) =>
    child.on('close', (code) => reject(new Error(`the receiver exited (${code}) after ${JSON.stringify(lines.items)}`))),
  );
  exited.catch(() => {});
  await Promise.race([lines.next('the receiver to bind'), exited]);
  const received = (): Datagram[] => lines.items.slice(1);
  return {
    received,
    saw: (state) => received().some((datagram) => datagram.data.split('\n').includes(state)),
    until: async (count) => {
      await Promise.race([lines.until((items) => items.length > count, () => `${count} datagrams (have ${JSON.stringify(received())})`), exited]);
      return received();
    },
  };
}
