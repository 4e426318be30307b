// net.ipv4.tcp_migrate_req=1 (Linux >= 5.14, per network namespace): when a
// SO_REUSEPORT member leaves LISTEN, the kernel moves its queue to a sibling
// instead of resetting it (DESIGN §2.5). The listener's 'migrated' path relies
// on that for shutdown(). The sysctl is only ever set in a child process in a
// network namespace of its own (unshare --net): the host's stays as it is.
import fs from 'node:fs';
import { describe, expect, test } from 'vitest';
import { requireDist, run, verdict } from '../helpers/kit.js';

const SYSCTL = '/proc/sys/net/ipv4/tcp_migrate_req';
const hostSetting = fs.existsSync(SYSCTL) ? fs.readFileSync(SYSCTL, 'utf8').trim() : '';

// Runs inside the new namespace, after `ip link set lo up`. Writing the
// /proc/sys file is what `sysctl -w net.ipv4.tcp_migrate_req=1` does; it
// refuses to when its namespace is the host's.
const CHILD = `
const fs = require('node:fs');
const net = require('node:net');
const [dist, mode, hostNamespace] = process.argv.slice(1);
const { ListenSocket, listen } = require(dist);
const QUEUED = 16;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
(async () => {
  if (fs.readlinkSync('/proc/self/ns/net') === hostNamespace) throw new Error('not in a network namespace of its own');
  fs.writeFileSync('${SYSCTL}', '1');
  // 'listener': the library's close of a paused listen(); otherwise the raw call.
  const old = mode === 'listener'
    ? await listen(net.createServer((socket) => socket.once('data', () => socket.end('served by the old member'))), { host: '127.0.0.1', reusePort: true })
    : await ListenSocket.open({ host: '127.0.0.1', reusePort: true });
  if (mode === 'listener') old.pause();
  const { port } = old.address();
  // Each client sends a byte and waits for one back.
  const clients = Array.from({ length: QUEUED }, () => new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.on('connect', () => socket.write('x'));
    socket.on('data', (chunk) => (reply += chunk));
    socket.on('error', (error) => resolve(error.code));
    socket.on('close', () => resolve(reply === 'y' ? 'ok' : 'closed after ' + JSON.stringify(reply)));
  }));
  for (let i = 0; i < 250 && old.pending().queued < QUEUED; i++) await sleep(20);
  const queuedOnOld = old.pending().queued;
  const fresh = await ListenSocket.open({ host: '127.0.0.1', port, reusePort: true });
  const queuedOnNewBefore = fresh.pending().queued;
  let report = null;
  if (mode === 'listener') report = await old.close();
  else old[mode]();
  const queuedOnNew = fresh.pending().queued;
  fresh.arm((fds) => {
    for (const fd of fds) {
      const socket = new net.Socket({ fd, readable: true, writable: true });
      socket.on('error', () => {});
      socket.once('data', () => socket.end('y'));
    }
  });
  let hang;
  const outcomes = await Promise.race([
    Promise.all(clients),
    new Promise((resolve) => (hang = setTimeout(resolve, 10000, 'clients hung'))),
  ]);
  clearTimeout(hang);
  if (mode !== 'listener') old.close();
  fresh.close();
  console.log(JSON.stringify({ queuedOnOld, queuedOnNewBefore, queuedOnNew, outcomes, report }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

interface Verdict {
  queuedOnOld: number;
  queuedOnNewBefore: number;
  queuedOnNew: number;
  outcomes: string[] | string;
  report: { reuseport: string; gated: boolean; mode: string } | null;
}

// As root, a network namespace alone; otherwise inside a user namespace whose
// root may set the sysctl of the network namespace it owns.
const unshareArgs = process.getuid?.() === 0 ? ['--net'] : ['--user', '--map-root-user', '--net'];

/** Why the namespace cannot be made here, or undefined when it can. */
async function cannotUnshare(): Promise<string | undefined> {
  if (!fs.existsSync(SYSCTL)) return `${SYSCTL} is missing: the kernel has no tcp_migrate_req (Linux < 5.14)`;
  try {
    const probe = await run('unshare', [...unshareArgs, 'ip', 'link', 'set', 'lo', 'up'], { killAfterMs: 10_000 });
    if (probe.code !== 0) return `unshare ${unshareArgs.join(' ')} ip link set lo up failed (${probe.code}): ${probe.stderr.trim()}`;
  } catch (error) {
    return `unshare (util-linux) or ip (iproute2) is unavailable: ${(error as Error).message}`;
  }
  return undefined;
}

describe('tcp_migrate_req moves the queue of a member that leaves LISTEN', () => {
  test.each(['shutdown', 'close', 'listener'] as const)('%s(): the queued connections are accepted by the new member, none reset', async (mode, context) => {
    const reason = await cannotUnshare();
    if (reason !== undefined) {
      context.skip(`no network namespace for the tcp_migrate_req test: ${reason}`);
      return;
    }
    const hostNamespace = fs.readlinkSync('/proc/self/ns/net');
    const result = await run(
      'unshare',
      [...unshareArgs, 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, '-e', CHILD, requireDist(), mode, hostNamespace],
      { killAfterMs: 60_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const { queuedOnOld, queuedOnNewBefore, queuedOnNew, outcomes, report } = verdict<Verdict>(result);
    // The listener's close takes the 'migrated' path: no gate, no sweep into itself.
    if (mode === 'listener') expect(report).toMatchObject({ mode: 'close', reuseport: 'migrated', gated: false });
    expect({ queuedOnOld, queuedOnNewBefore, queuedOnNew }).toEqual({ queuedOnOld: 16, queuedOnNewBefore: 0, queuedOnNew: 16 });
    expect(outcomes).toEqual(Array.from({ length: 16 }, () => 'ok'));
    // The host's setting is untouched.
    expect(fs.readFileSync(SYSCTL, 'utf8').trim()).toBe(hostSetting);
  });
});
