// The AF_UNIX calls the handover uses: unixConnect, sendWithFds,
// receiveWithFds, peerCredentials. One side is a Node net.Server on a path in
// a fresh temp dir, paused on connect so that libuv never reads what the
// addon is to receive; both sides then use the raw fds.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { loadBinding, type NativeSystemError } from '../../src/core/native.js';
import { socketFd } from '../../src/core/node-internals.js';
import { O_CLOEXEC, O_NONBLOCK, Opened, acceptExactly, fdFlags, fdTarget, openFds, run, waitFor } from '../helpers/kit.js';

const binding = loadBinding();
const opened = new Opened();
afterEach(() => opened.dispose());

let dir: string;
beforeEach(() => {
  dir = opened.tempDir('gl-unix-');
});

/** What `call` threw. */
function thrown(call: () => unknown): NativeSystemError {
  try {
    call();
  } catch (error) {
    return error as NativeSystemError;
  }
  throw new Error('did not throw');
}

/** A connected pair: `client` from unixConnect, `server` the fd of the paused net.Socket Node accepted. */
async function connectedPair(): Promise<{ client: number; server: number; serverSocket: net.Socket }> {
  const socketPath = path.join(dir, 'control');
  const accepted: net.Socket[] = [];
  const server = opened.server(net.createServer({ pauseOnConnect: true }, (socket) => accepted.push(opened.track(socket))));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const client = opened.fd(binding.unixConnect(socketPath, 5000));
  await waitFor('the server side of the connection', () => accepted.length === 1);
  const serverSocket = accepted[0]!;
  return { client, server: socketFd(serverSocket)!, serverSocket };
}

/**
 * A python3 child listening on an AF_UNIX socket at `socketPath` with
 * backlog 0; it starts accepting only after a line on its stdin. Resolves
 * once it listens.
 */
async function slowAcceptor(socketPath: string): Promise<ChildProcess> {
  const script = `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(0)
print('listening', flush=True)
sys.stdin.readline()
time.sleep(0.2)
held = []
while True:
    held.append(s.accept()[0])
`;
  const child = opened.child(spawn('python3', ['-c', script, socketPath], { stdio: ['pipe', 'pipe', 'inherit'] }));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      if (text.includes('listening')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`python3 exited (${code}) before it listened`)));
  });
  return child;
}

describe('unixConnect', () => {
  test('connects a CLOEXEC, non-blocking fd; peerCredentials on both ends name this process', async () => {
    const { client, server } = await connectedPair();
    for (const fd of [client, server]) {
      expect(binding.peerCredentials(fd)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    }
    expect(fdFlags(client) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fdFlags(client) & O_NONBLOCK).toBe(O_NONBLOCK);
  });

  test('a missing path is ENOENT, a path longer than sun_path ENAMETOOLONG', () => {
    const before = openFds();
    expect(thrown(() => binding.unixConnect(path.join(dir, 'missing'), 1000))).toMatchObject({
      code: 'ENOENT',
      syscall: 'connect',
    });
    expect(thrown(() => binding.unixConnect(path.join(dir, 'x'.repeat(108)), 1000))).toMatchObject({
      code: 'ENAMETOOLONG',
      syscall: 'connect',
    });
    expect(openFds()).toEqual(before);
  });

  test('a stale socket file (its server gone, the file left behind) is ECONNREFUSED', async () => {
    const socketPath = path.join(dir, 'stale');
    // python3 does not unlink the path it bound when it exits (Node would).
    const result = await run('python3', [
      '-c',
      'import socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)',
      socketPath,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(fs.statSync(socketPath).isSocket()).toBe(true);
    const before = openFds();
    expect(thrown(() => binding.unixConnect(socketPath, 1000))).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    expect(openFds()).toEqual(before);
  });

  // A non-blocking AF_UNIX connect to a full backlog fails with EAGAIN and
  // leaves the socket unconnected (poll() calls it writable at once); so
  // unixConnect waits in a blocking connect, bounded by its timeout.
  test('a full backlog: ETIMEDOUT with the socket closed; once the peer accepts, a waiting connect succeeds', async () => {
    const socketPath = path.join(dir, 'full');
    const acceptor = await slowAcceptor(socketPath);
    const connected: number[] = [];
    let error: NativeSystemError | undefined;
    // listen(0) queues one connection: the next one waits.
    for (let i = 0; i < 8 && error === undefined; i++) {
      const before = openFds();
      try {
        connected.push(opened.fd(binding.unixConnect(socketPath, 100)));
      } catch (caught) {
        error = caught as NativeSystemError;
        expect(openFds()).toEqual(before);
      }
    }
    expect(connected.length).toBeGreaterThan(0);
    expect(error).toMatchObject({ code: 'ETIMEDOUT', syscall: 'connect' });

    acceptor.stdin!.write('accept now\n');
    const fd = opened.fd(binding.unixConnect(socketPath, 10_000));
    expect(binding.peerCredentials(fd).pid).toBe(acceptor.pid);
    expect(fdFlags(fd) & O_NONBLOCK).toBe(O_NONBLOCK);
  });
});

describe('sendWithFds and receiveWithFds', () => {
  test('a listening TCP socket passed over: a new CLOEXEC fd for the same socket, which adopt() can accept on', async () => {
    const { client, server } = await connectedPair();
    const original = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = original.address();

    binding.sendWithFds(client, Buffer.from('{"offer":1}\n'), [original.fd]);
    const received = binding.receiveWithFds(server, 5000, 1024);
    for (const fd of received.fds) opened.fd(fd);

    expect(received.data.toString()).toBe('{"offer":1}\n');
    expect(received.eof).toBe(false);
    expect(received.fds).toHaveLength(1);
    const fd = received.fds[0]!;
    expect(fd).not.toBe(original.fd);
    expect(fdTarget(fd)).toBe(fdTarget(original.fd));
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);

    const adopted = opened.listenSocket(ListenSocket.adopt(fd));
    const client1 = opened.raw(port);
    const { fds } = await acceptExactly(adopted, opened, 1);
    expect(fds).toHaveLength(1);
    await waitFor('client connected', () => client1.connected);
    expect(client1.errors).toEqual([]);
  });

  test('several fds arrive in the order sent; data split over messages is gathered up to the newline', async () => {
    const { client, server } = await connectedPair();
    const first = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const second = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));

    // A message with fds ends a recvmsg: three reads are needed here.
    binding.sendWithFds(server, Buffer.from('ab'), [first.fd, second.fd]);
    binding.sendWithFds(server, Buffer.from('c'), [second.fd]);
    binding.sendWithFds(server, Buffer.from('d\nafter'), []);
    const received = binding.receiveWithFds(client, 5000, 1024);
    for (const fd of received.fds) opened.fd(fd);

    expect(received.data.toString()).toMatch(/^abcd\n/);
    expect(received.fds.map((fd) => fdTarget(fd))).toEqual([first.fd, second.fd, second.fd].map((fd) => fdTarget(fd)));
  });

  test('a peer that never writes: ETIMEDOUT', async () => {
    const { client } = await connectedPair();
    expect(thrown(() => binding.receiveWithFds(client, 200, 1024))).toMatchObject({ code: 'ETIMEDOUT', syscall: 'recvmsg' });
  });

  test('a peer that closes: eof with what it sent, no newline needed', async () => {
    const { client, serverSocket } = await connectedPair();
    serverSocket.end('partial');
    await new Promise((resolve) => serverSocket.once('finish', resolve));
    const received = binding.receiveWithFds(client, 5000, 1024);
    expect(received).toEqual({ data: Buffer.from('partial'), fds: [], eof: true });
  });

  test('garbage beyond maxBytes: at most maxBytes come back', async () => {
    const { client, server } = await connectedPair();
    binding.sendWithFds(server, Buffer.alloc(100_000, 'x'), []);
    const received = binding.receiveWithFds(client, 5000, 1000);
    expect(received.data.length).toBe(1000);
    expect(received.eof).toBe(false);
  });

  test('fds received before a timeout are closed, none leaked', async () => {
    const { client, server } = await connectedPair();
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    // No newline: the receive waits for more and times out holding two fds.
    binding.sendWithFds(server, Buffer.from('no newline'), [listener.fd, listener.fd]);
    const before = openFds();
    expect(thrown(() => binding.receiveWithFds(client, 200, 1024))).toMatchObject({ code: 'ETIMEDOUT' });
    expect(openFds()).toEqual(before);
  });

  test('more fds in one message than a receive takes (64): EMSGSIZE, none leaked', async () => {
    const { client, server } = await connectedPair();
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    binding.sendWithFds(server, Buffer.from('many\n'), Array.from({ length: 70 }, () => listener.fd));
    const before = openFds();
    expect(thrown(() => binding.receiveWithFds(client, 1000, 1024))).toMatchObject({ code: 'EMSGSIZE', syscall: 'recvmsg' });
    expect(openFds()).toEqual(before);
  });

  test('sending to a peer that closed: EPIPE, no SIGPIPE', async () => {
    const { client, serverSocket } = await connectedPair();
    await new Promise((resolve) => serverSocket.destroy().once('close', resolve));
    expect(thrown(() => binding.sendWithFds(client, Buffer.from('x\n'), []))).toMatchObject({ code: 'EPIPE', syscall: 'sendmsg' });
  });

  test('a non-Buffer is a programming error: TypeError', async () => {
    const { client } = await connectedPair();
    expect(() => binding.sendWithFds(client, 'text' as never, [])).toThrow(TypeError);
  });
});
