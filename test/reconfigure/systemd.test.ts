// Socket activation as systemd does it: the sockets are passed at fds 3 and
// up with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, and NOTIFY_SOCKET
// receives sd_notify datagrams. The service adopts each by name, tells the
// manager READY=1, and on SIGTERM says STOPPING=1 and retires: the sockets
// stay systemd's, still listening, their queue intact for the next start.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { waitFor } from '../helpers/close-fixtures.js';
import { requireDist } from '../native/helpers.js';

const CHILD = path.join(__dirname, '..', 'helpers', 'systemd-child.mjs');

// Receives sd_notify datagrams on an AF_UNIX datagram socket; prints each.
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('ready', flush=True)
while True:
    data = s.recv(4096)
    print(data.decode(), flush=True)
`;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) step();
});

function notifyReceiver(socketPath: string) {
  const child = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanup.push(() => child.kill('SIGKILL'));
  const lines: string[] = [];
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  return { lines, ready: () => waitFor('the notify receiver', () => lines.includes('ready')) };
}

interface ChildEvent {
  event: string;
  [key: string]: unknown;
}

/** The service, started as systemd starts it; `pid` is what LISTEN_PID will say, `'self'` for its own. */
function service(fds: number[], names: string[], want: string[], listenPid: 'self' | string, notify: string) {
  const env = { ...process.env, LISTEN_FDS: String(fds.length), LISTEN_FDNAMES: names.join(':'), NOTIFY_SOCKET: notify };
  // systemd sets LISTEN_PID after the fork; a shell that execs node keeps its pid.
  const pidAssignment = listenPid === 'self' ? 'LISTEN_PID=$$' : `LISTEN_PID=${listenPid}`;
  const child = spawn(
    'sh',
    ['-c', `${pidAssignment} exec "$0" "$@"`, process.execPath, CHILD, requireDist(), ...want],
    { env, stdio: ['ignore', 'pipe', 'pipe', ...fds] },
  );
  cleanup.push(() => child.kill('SIGKILL'));
  const events: ChildEvent[] = [];
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      events.push(JSON.parse(buffered.slice(0, newline)) as ChildEvent);
      buffered = buffered.slice(newline + 1);
    }
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, events, exited, stderr: () => stderr };
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function systemdSockets(count: number): Promise<ListenSocket[]> {
  const sockets: ListenSocket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = await ListenSocket.open({ host: '127.0.0.1' });
    sockets.push(socket);
    cleanup.push(() => socket.close());
  }
  return sockets;
}

test('adopts each socket by name, READY=1 then STOPPING=1; the close retires and the sockets stay systemd\'s', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-systemd-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const notify = path.join(dir, 'notify');
  const receiver = notifyReceiver(notify);
  await receiver.ready();
  const [web, api] = await systemdSockets(2);
  // Asked for in the other order: matched by name, not position.
  const unit = service([web!.fd, api!.fd], ['web', 'api'], ['api', 'web'], 'self', notify);
  await waitFor('both listening', () => unit.events.filter((e) => e.event === 'listening').length === 2, { tries: 500 });
  const listening = unit.events.filter((e) => e.event === 'listening');
  expect(listening).toEqual([
    { event: 'listening', name: 'api', port: api!.address().port, shared: true },
    { event: 'listening', name: 'web', port: web!.address().port, shared: true },
  ]);
  // The variables are consumed, as sd_listen_fds(1) does.
  expect(unit.events.find((e) => e.event === 'env')).toEqual({ event: 'env', LISTEN_FDS: null });
  expect(await get(web!.address().port)).toMatch(/^web /);
  expect(await get(api!.address().port)).toMatch(/^api /);
  await waitFor('READY=1', () => receiver.lines.includes('READY=1'));

  unit.child.kill('SIGTERM');
  expect(await unit.exited).toBe(0);
  const closed = unit.events.filter((e) => e.event === 'closed');
  expect(closed.map((e) => (e.report as { mode: string }).mode)).toEqual(['retire', 'retire']);
  await waitFor('STOPPING=1', () => receiver.lines.includes('STOPPING=1'));
  // Still listening in systemd's hands: a client is queued, not refused.
  const client = net.connect({ port: web!.address().port, host: '127.0.0.1' });
  cleanup.push(() => client.destroy());
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  await waitFor('the client queued in the passed socket', () => web!.pending().queued === 1);
  expect(unit.events.filter((e) => e.event === 'warning')).toEqual([]);
});

test('a LISTEN_PID that is not the process: ignored with a warning, nothing adopted, it binds as host/port say', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-systemd-'));
  cleanup.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const notify = path.join(dir, 'notify');
  const receiver = notifyReceiver(notify);
  await receiver.ready();
  const [web] = await systemdSockets(1);
  const unit = service([web!.fd], ['web'], ['web'], '1', notify);
  await waitFor('listening', () => unit.events.some((e) => e.event === 'listening'), { tries: 500 });
  const listening = unit.events.find((e) => e.event === 'listening')!;
  expect(listening.shared).toBe(false);
  expect(listening.port).not.toBe(web!.address().port);
  expect(unit.events.filter((e) => e.event === 'warning')).toEqual([{ event: 'warning', code: 'GRACEFUL_LISTENER_SYSTEMD_PID' }]);
  unit.child.kill('SIGTERM');
  expect(await unit.exited).toBe(0);
  expect(unit.events.find((e) => e.event === 'closed')).toMatchObject({ report: { mode: 'close' } });
});
