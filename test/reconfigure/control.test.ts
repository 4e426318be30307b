// The handover control socket against successors that misbehave: a stale
// socket file, garbage, a peer that hangs, a second successor during a
// handover, a peer of another uid, and successors that die before and
// after saying ready. Each gets a clear refusal or nothing; the running
// listener goes on as before (or, for a successor that died after ready
// while the socket was still held here, accepts again).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { Lines, Opened, distEntry, request, requireDist, waitFor } from '../helpers/kit.js';

const PEER = path.join(__dirname, '..', 'helpers', 'handover-peer.mjs');
const distDir = path.dirname(distEntry);

const opened = new Opened();
afterEach(() => opened.dispose());

let dir: string;
let control: string;
beforeEach(() => {
  dir = opened.tempDir('gl-control-');
  control = path.join(dir, 'control.sock');
});

interface Step {
  step: string;
  [key: string]: unknown;
}

/** A misbehaving successor; `steps` fill as it prints, `go()` writes a line to its stdin. */
function peer(behaviour: string) {
  requireDist();
  const child = opened.child(spawn(process.execPath, [PEER, distDir, control, behaviour], { stdio: ['pipe', 'pipe', 'pipe'] }));
  const { items: steps } = new Lines(child.stdout, (line) => JSON.parse(line) as Step);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // 'close', not 'exit': by then every step it printed has been read.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, steps, exited, stderr: () => stderr, go: () => child.stdin.write('go\n'), saw: (step: string) => steps.find((s) => s.step === step) };
}

async function running(timeout = 5000) {
  const server = http.createServer((request, response) => {
    if (request.url === '/slow') setTimeout(() => response.end('slow\n'), 300_000).unref();
    else response.end('here\n');
  });
  const listener = opened.listener(await listen(server, { host: '127.0.0.1', handover: { path: control, timeout } }));
  await waitFor('the control socket', () => fs.existsSync(control));
  return { server, listener, port: listener.address().port };
}

test('a stale control socket file (its process is gone): listen() binds fresh and serves the path', async () => {
  execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', control]);
  expect(fs.statSync(control).isSocket()).toBe(true);
  const { port } = await running();
  expect((await request(port)).body).toBe('here\n');
  // The path is live now: a successor gets an offer.
  const second = peer('second');
  await second.exited;
  expect(second.saw('offer')).toMatchObject({ fds: 1 });
});

test('garbage gets nothing; the listener goes on, and the next successor is served', async () => {
  const { listener, port } = await running();
  const garbage = peer('garbage');
  await garbage.exited;
  expect(garbage.saw('answer')).toMatchObject({ eof: true, data: '', fds: 0 });
  expect(listener.state).toBe('accepting');
  expect((await request(port)).body).toBe('here\n');
  const second = peer('second');
  await second.exited;
  expect(second.saw('offer')).toMatchObject({ fds: 1 });
  expect(listener.state).toBe('accepting');
  expect(listener.shared).toBe(false);
});

test('a peer that connects and hangs is dropped after the timeout; a second successor meanwhile is told busy', async () => {
  const { listener } = await running(500);
  const hang = peer('hang');
  await waitFor('the hanging peer to connect', () => hang.saw('connected') !== undefined);
  const busy = peer('second');
  await busy.exited;
  expect(busy.saw('offer')?.data).toMatch(/"error":"busy/);
  expect(busy.saw('offer')).toMatchObject({ fds: 0 });
  // After the timeout the hanging peer is gone and a successor is served.
  await waitFor('the next successor to be served', async () => {
    const next = peer('second');
    await next.exited;
    return next.saw('offer')?.fds === 1;
  }, { tries: 20, intervalMs: 200 });
  hang.go();
  expect(listener.state).toBe('accepting');
});

// A successor running as `nobody`, in python3 (it needs nothing of this
// checkout, which `nobody` may not be able to read): connects, asks for the
// sockets, prints what it got.
const NOBODY_PEER = `
import array, json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({'step': 'connect-failed', 'errno': e.errno}), flush=True)
    sys.exit(0)
s.sendall(b'{"v":1,"op":"handover"}\\n')
s.settimeout(5)
fds = array.array('i')
data, ancillary, flags, address = s.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
count = sum(len(d) // fds.itemsize for level, kind, d in ancillary if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS)
print(json.dumps({'step': 'offer', 'data': data.decode().strip(), 'fds': count}), flush=True)
`;

async function nobodyPeer(): Promise<Step> {
  // The system's python3: one under root's home (pyenv) is out of nobody's reach.
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  // Not execFileSync: the listener it talks to runs on this event loop.
  const { stdout } = await promisify(execFile)('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', python, '-c', NOBODY_PEER, control], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return JSON.parse(stdout.trim()) as Step;
}

test('a peer of another uid is refused (SO_PEERCRED), and cannot even connect to the 0600 socket', async () => {
  const { listener } = await running();
  expect(fs.statSync(control).mode & 0o777).toBe(0o600);
  // EACCES: the socket file is the owner's alone.
  expect(await nobodyPeer()).toEqual({ step: 'connect-failed', errno: 13 });
  // Opened to everyone, the socket still serves only the same uid or root.
  fs.chmodSync(control, 0o666);
  fs.chmodSync(dir, 0o755);
  const refused = await nobodyPeer();
  expect(refused.data).toMatch(/"error":"permission denied"/);
  expect(refused.fds).toBe(0);
  expect(listener.state).toBe('accepting');
});

test('a successor killed before ready: the running listener never stopped, nothing changed', async () => {
  const { listener, port } = await running();
  const dying = peer('die-before-ready');
  await dying.exited;
  expect(dying.saw('offer')).toMatchObject({ fds: 1 });
  expect(listener.state).toBe('accepting');
  expect(listener.shared).toBe(false);
  expect((await request(port)).body).toBe('here\n');
});

test('a successor killed right after ready, while this listener still holds the socket: it accepts again', async () => {
  const { listener, port } = await running();
  // A request in flight keeps the retiring listener (and its fd) alive.
  const slow = opened.raw(port);
  slow.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('the slow request', () => listener.count === 2);
  const handovers: unknown[] = [];
  listener.on('handover', (event) => handovers.push(event));
  // The same lifecycle on node:diagnostics_channel.
  const published: [string, Record<string, unknown>][] = [];
  for (const name of ['handover', 'draining', 'resume']) {
    const onMessage = (message: unknown): void => void published.push([name, message as Record<string, unknown>]);
    diagnostics.subscribe(`graceful-listener:${name}`, onMessage);
    opened.cleanup(() => diagnostics.unsubscribe(`graceful-listener:${name}`, onMessage));
  }
  const successor = peer('die-after-ready');
  await waitFor('ready', () => successor.saw('ready') !== undefined);
  await waitFor('the retire', () => listener.state === 'draining');
  expect(handovers).toHaveLength(1);
  successor.go();
  await successor.exited;
  await waitFor('accepting again', () => listener.state === 'accepting');
  expect(published).toEqual([
    ['handover', { listener, ...(handovers[0] as object) }],
    ['draining', { listener }],
    ['resume', { listener, aborted: true }],
  ]);
  expect(handovers[0]).toMatchObject({ name: 'default', pid: successor.child.pid, uid: process.getuid!() });
  expect(listener.shared).toBe(false);
  expect((await request(port)).body).toBe('here\n');
  slow.destroy();
});

describe('directory rules', () => {
  test('a control path in a directory owned by another user is refused', async () => {
    fs.chownSync(dir, 65534, 65534);
    const server = http.createServer();
    await expect(listen(server, { host: '127.0.0.1', handover: { path: control } })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
  });
});
