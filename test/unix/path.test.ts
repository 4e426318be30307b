// Opening a Unix-domain listener: what happens to a path that exists (a
// stale socket file, a live listener, a file that is not a socket), the
// file's mode, abstract names, and bad input.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket, listen, type ListenOptions } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';
import { Lines, Opened, nextEvent } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** One request over the socket at `socketPath`: the body, or the error's code. */
function get(socketPath: string): Promise<string> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath, path: '/', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function answering(body: string): http.Server {
  return http.createServer((_request, response) => response.end(body));
}

describe('a path that exists', () => {
  test('a stale socket file (nobody listens: connect is refused) is unlinked and bound again', async () => {
    const socketPath = path.join(opened.tempDir('gl-unix-stale-'), 'app.sock');
    // A listener that went away without unlinking its file, as after a crash.
    loadBinding().openUnix(socketPath, 8, -1).close();
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(await get(socketPath)).toBe('ECONNREFUSED');

    const listener = opened.listener(await listen(answering('fresh'), { path: socketPath }));
    expect(await get(socketPath)).toBe('fresh');
    await opened.close(listener);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  test('a live listener in another process: EADDRINUSE with code, errno, syscall; it keeps serving', async () => {
    const socketPath = path.join(opened.tempDir('gl-unix-live-'), 'app.sock');
    const script = `require('http').createServer((q, r) => r.end('other')).listen(process.argv[1], () => console.log('listening'))`;
    const child = opened.child(spawn(process.execPath, ['-e', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await nextEvent(new Lines(child.stdout!), 'line');

    const server = answering('ours');
    const error = await listen(server, { path: socketPath }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'EADDRINUSE', errno: -98, syscall: 'bind', address: socketPath });
    expect((error as Error).message).toContain('options.replace');
    expect(server.listening).toBe(false);
    expect(await get(socketPath)).toBe('other');
  });

  test('a live listener of this process: EADDRINUSE; with replace: true the path is taken over', async () => {
    const socketPath = path.join(opened.tempDir('gl-unix-live-'), 'app.sock');
    const first = opened.listener(await listen(answering('first'), { path: socketPath }));
    await expect(listen(answering('second'), { path: socketPath })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(await get(socketPath)).toBe('first');

    const second = opened.listener(await listen(answering('second'), { path: socketPath, replace: true }));
    expect(await get(socketPath)).toBe('second');
    expect(first.ownsPath()).toBe(false);
    await opened.close(first);
    expect(await get(socketPath)).toBe('second');
    await opened.close(second);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  test.each([
    ['a regular file', (file: string) => fs.writeFileSync(file, 'precious')],
    ['a directory', (file: string) => fs.mkdirSync(file)],
    ['a symbolic link to a regular file', (file: string) => {
      fs.writeFileSync(`${file}.target`, 'precious');
      fs.symlinkSync(`${file}.target`, file);
    }],
  ])('%s: EADDRINUSE, with or without replace, and the file is left as it was', async (_kind, make) => {
    const file = path.join(opened.tempDir('gl-unix-notsock-'), 'app.sock');
    make(file);
    const before = fs.lstatSync(file);
    for (const options of [{ path: file }, { path: file, replace: true }]) {
      const error = await listen(answering('x'), options).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', address: file });
      expect((error as Error).message).toContain('not a socket');
    }
    const after = fs.lstatSync(file);
    expect({ ino: after.ino, mode: after.mode }).toEqual({ ino: before.ino, mode: before.mode });
    if (before.isFile()) expect(fs.readFileSync(file, 'utf8')).toBe('precious');
    expect(fs.readdirSync(path.dirname(file)).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  test('a directory that does not exist: ENOENT from bind', async () => {
    const socketPath = path.join(opened.tempDir('gl-unix-nodir-'), 'missing', 'app.sock');
    await expect(listen(answering('x'), { path: socketPath })).rejects.toMatchObject({ code: 'ENOENT', syscall: 'bind', address: socketPath });
    await expect(listen(answering('x'), { path: socketPath, replace: true })).rejects.toMatchObject({ code: 'ENOENT', syscall: 'bind' });
  });
});

describe('mode', () => {
  test.each([0o600, 0o660, 0o777])('%o is the file mode, whatever the umask', async (mode) => {
    const socketPath = path.join(opened.tempDir('gl-unix-mode-'), 'app.sock');
    const listener = opened.listener(await listen(answering('x'), { path: socketPath, mode }));
    expect(fs.lstatSync(socketPath).mode & 0o777).toBe(mode);
    await opened.close(listener);
  });

  // The system's python3: one under root's home (pyenv) is out of nobody's reach.
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const connectAsNobody = async (socketPath: string): Promise<string> => {
    const script = 'import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1]); print("connected")\nexcept OSError as e: print(e.errno)';
    const { stdout } = await promisify(execFile)('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', python, '-c', script, socketPath], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    return stdout.trim();
  };

  test.runIf(process.getuid?.() === 0)('0600 keeps another uid out (EACCES); 0666 lets it connect', async () => {
    const dir = opened.tempDir('gl-unix-perm-');
    fs.chmodSync(dir, 0o755);
    const closed = opened.listener(await listen(answering('x'), { path: path.join(dir, 'closed.sock'), mode: 0o600 }));
    const open = opened.listener(await listen(answering('x'), { path: path.join(dir, 'open.sock'), mode: 0o666 }));
    expect(await connectAsNobody(path.join(dir, 'closed.sock'))).toBe('13');
    expect(await connectAsNobody(path.join(dir, 'open.sock'))).toBe('connected');
    await opened.close(closed);
    await opened.close(open);
  });
});

describe('an abstract name', () => {
  test('leaves no file, serves net.connect(name), and is free again after the close', async () => {
    const dir = opened.tempDir('gl-unix-abstract-');
    const name = `\0graceful-listener-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const server = answering('abstract');
    const listener = opened.listener(await listen(server, { path: name }));
    expect(server.address()).toBe(name);
    expect(listener.ownsPath()).toBe(false);
    expect(await get(name)).toBe('abstract');
    expect(fs.readdirSync(dir)).toEqual([]);
    await expect(listen(answering('x'), { path: name })).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
    await opened.close(listener);
    const again = opened.listener(await listen(answering('again'), { path: name }));
    expect(await get(name)).toBe('again');
    await opened.close(again);
  });
});

describe('bad input', () => {
  const server = (): http.Server => answering('x');
  const invalidValue = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
  const invalidType = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
  const outOfRange = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };

  test.each([
    ['path not a string', { path: 42 }, invalidType],
    ['an empty path', { path: '' }, invalidValue],
    ['a lone NUL', { path: '\0' }, invalidValue],
    ['a NUL inside a path', { path: '/tmp/a\0b' }, invalidValue],
    ['a path longer than sun_path', { path: `/tmp/${'x'.repeat(110)}` }, invalidValue],
    ['an abstract name longer than sun_path', { path: `\0${'x'.repeat(108)}` }, invalidValue],
    ['mode not a number', { path: '/tmp/x.sock', mode: '0600' }, invalidType],
    ['mode above 0o777', { path: '/tmp/x.sock', mode: 0o1777 }, outOfRange],
    ['mode negative', { path: '/tmp/x.sock', mode: -1 }, outOfRange],
    ['mode not an integer', { path: '/tmp/x.sock', mode: 1.5 }, outOfRange],
    ['mode on an abstract name', { path: '\0abstract', mode: 0o600 }, invalidValue],
    ['replace not a boolean', { path: '/tmp/x.sock', replace: 1 }, invalidType],
    ['replace on an abstract name', { path: '\0abstract', replace: true }, invalidValue],
    ['mode without path', { port: 0, mode: 0o600 }, invalidValue],
    ['replace without path', { port: 0, replace: true }, invalidValue],
    ['reusePort with path', { path: '/tmp/x.sock', reusePort: true }, invalidValue],
    ['host with path', { path: '/tmp/x.sock', host: '127.0.0.1' }, invalidValue],
    ['port with path', { path: '/tmp/x.sock', port: 80 }, invalidValue],
    ['ipv6Only with path', { path: '/tmp/x.sock', ipv6Only: true }, invalidValue],
    ['fd with path', { path: '/tmp/x.sock', fd: 3 }, invalidValue],
    ['handover with path', { path: '/tmp/x.sock', handover: '/tmp/control.sock' }, invalidValue],
    ['systemd with path', { path: '/tmp/x.sock', systemd: true }, invalidValue],
  ])('%s', async (_name, options, error) => {
    const subject = server();
    await expect(listen(subject, options as unknown as ListenOptions)).rejects.toMatchObject(error);
    expect(subject.listening).toBe(false);
    expect(fs.existsSync('/tmp/x.sock')).toBe(false);
  });

  test('TCP-only calls on a Unix-domain listener throw ERR_UNIX_LISTENER', async () => {
    const socketPath = path.join(opened.tempDir('gl-unix-calls-'), 'app.sock');
    const listener = opened.listener(await listen(answering('x'), { path: socketPath }));
    const code = { name: 'ListenerError', code: 'ERR_UNIX_LISTENER' };
    expect(() => listener.address()).toThrow(expect.objectContaining(code));
    const socket = opened.listenSocket(await ListenSocket.open({ path: path.join(path.dirname(socketPath), 'raw.sock') }));
    expect(() => socket.address()).toThrow(expect.objectContaining(code));
    expect(() => socket.steer(0)).toThrow(expect.objectContaining(code));
    expect(socket.handshakeRequests()).toEqual([]);
    socket.gate(true);
    // The gate is for good on AF_UNIX: no way back to listening.
    expect(() => socket.gate(false)).toThrow(expect.objectContaining(code));
    expect(() => socket.listen()).toThrow(expect.objectContaining(code));
    expect(fs.existsSync(path.join(path.dirname(socketPath), 'raw.sock'))).toBe(false);
    socket.close();
    await opened.close(listener);
  });
});
