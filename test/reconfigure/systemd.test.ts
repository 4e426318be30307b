// Socket activation as systemd does it: the sockets are passed at fds 3 and
// up with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID, and NOTIFY_SOCKET
// receives sd_notify datagrams. The service adopts each by name, tells the
// manager READY=1, and on SIGTERM says STOPPING=1 and retires: the sockets
// stay systemd's, still listening, their queue intact for the next start.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { Lines, Opened, request, requireDist, waitFor } from '../helpers/kit.js';
import { notifyReceiver } from '../helpers/python.js';

const CHILD = path.join(__dirname, '..', 'helpers', 'systemd-child.mjs');

const opened = new Opened();
afterEach(() => opened.dispose());

interface ChildEvent {
  event: string;
  [key: string]: unknown;
}

/** The service, started as systemd starts it; `pid` is what LISTEN_PID will say, `'self'` for its own. */
function service(fds: number[], names: string[], want: string[], listenPid: 'self' | string, notify: string) {
  const env = { ...process.env, LISTEN_FDS: String(fds.length), LISTEN_FDNAMES: names.join(':'), NOTIFY_SOCKET: notify };
  // systemd sets LISTEN_PID after the fork; a shell that execs node keeps its pid.
  const pidAssignment = listenPid === 'self' ? 'LISTEN_PID=$$' : `LISTEN_PID=${listenPid}`;
  const child = opened.child(
    spawn('sh', ['-c', `${pidAssignment} exec "$0" "$@"`, process.execPath, CHILD, requireDist(), ...want], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', ...fds],
    }),
  );
  const { items: events } = new Lines(child.stdout!, (line) => JSON.parse(line) as ChildEvent);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // 'close', not 'exit': by then every event it printed has been read.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, events, exited, stderr: () => stderr };
}

async function systemdSockets(count: number): Promise<ListenSocket[]> {
  const sockets: ListenSocket[] = [];
  for (let i = 0; i < count; i++) {
    sockets.push(opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' })));
  }
  return sockets;
}

test('adopts each socket by name, READY=1 then STOPPING=1; the close retires and the sockets stay systemd\'s', async () => {
  const notify = path.join(opened.tempDir('gl-systemd-'), 'notify');
  const receiver = await notifyReceiver(opened, [notify]);
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
  expect((await request(web!.address().port)).body).toMatch(/^web /);
  expect((await request(api!.address().port)).body).toMatch(/^api /);
  await waitFor('READY=1', () => receiver.saw('READY=1'));

  unit.child.kill('SIGTERM');
  expect(await unit.exited).toBe(0);
  const closed = unit.events.filter((e) => e.event === 'closed');
  expect(closed.map((e) => (e.report as { mode: string }).mode)).toEqual(['retire', 'retire']);
  await waitFor('STOPPING=1', () => receiver.saw('STOPPING=1'));
  // Still listening in systemd's hands: a client is queued, not refused.
  const client = opened.track(net.connect({ port: web!.address().port, host: '127.0.0.1' }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  await waitFor('the client queued in the passed socket', () => web!.pending().queued === 1);
  expect(unit.events.filter((e) => e.event === 'warning')).toEqual([]);
});

test('a LISTEN_PID that is not the process: ignored with a warning, nothing adopted, it binds as host/port say', async () => {
  const notify = path.join(opened.tempDir('gl-systemd-'), 'notify');
  await notifyReceiver(opened, [notify]);
  const [web] = await systemdSockets(1);
  const unit = service([web!.fd], ['web'], ['web'], '1', notify);
  await waitFor('listening', () => unit.events.some((e) => e.event === 'listening'), { tries: 500 });
  const listening = unit.events.find((e) => e.event === 'listening')!;
  expect(listening.shared).toBe(false);
  expect(listening.port).not.toBe(web!.address().port);
  unit.child.kill('SIGTERM');
  expect(await unit.exited).toBe(0);
  // process.emitWarning reports on a later tick than the 'listening' line: counted once the child is gone.
  expect(unit.events.filter((e) => e.event === 'warning')).toEqual([{ event: 'warning', code: 'GRACEFUL_LISTENER_SYSTEMD_PID' }]);
  expect(unit.events.find((e) => e.event === 'closed')).toMatchObject({ report: { mode: 'close' } });
});
