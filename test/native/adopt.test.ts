// adopt() makes its duplicate non-blocking, and O_NONBLOCK is a flag of the
// open file description, which the duplicate shares with the caller's fd and
// with every other process that holds the socket. So the fd is checked first:
// one that adopt() refuses keeps its flags.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { O_NONBLOCK, Opened, fdFlags, requireDist, run, verdict } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

function adoptRefused(fd: number): string {
  try {
    opened.listenSocket(ListenSocket.adopt(fd));
  } catch (error) {
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    return (error as Error).message;
  }
  throw new Error(`adopt(${fd}) succeeded`);
}

// A Node child whose fd 0 is a blocking Unix socket (the socketpair end
// Node's spawn() gives a 'pipe' stdin): adopt(0), then fd 0's flags.
const ADOPT_STDIN = `
const fs = require('node:fs');
const { ListenSocket } = require(process.argv[1]);
const flags = () => parseInt(/^flags:\\s+([0-7]+)$/m.exec(fs.readFileSync('/proc/self/fdinfo/0', 'utf8'))[1], 8);
const before = flags();
let message;
try { ListenSocket.adopt(0); } catch (error) { message = error.message; }
console.log(JSON.stringify({ before, after: flags(), message }));
`;

// Another process (python3) holds a blocking TCP socket — bound and not
// listening, or listening — and runs a Node child that adopts it as fd 3.
// python3 reports O_NONBLOCK as it sees it on its own fd afterwards.
const SHARED_SOCKET = `
import fcntl, json, os, socket, subprocess, sys
node, dist, listening = sys.argv[1], sys.argv[2], sys.argv[3] == 'listening'
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
if listening:
    s.listen(8)
os.dup2(s.fileno(), 3)
child = """
const { ListenSocket } = require(process.argv[1]);
try { ListenSocket.adopt(3).close(); console.log('adopted'); } catch (error) { console.log(error.message); }
"""
blocking_before = fcntl.fcntl(3, fcntl.F_GETFL) & os.O_NONBLOCK == 0
out = subprocess.run([node, '-e', child, dist], pass_fds=[3], capture_output=True, text=True, timeout=20)
print(json.dumps({
  'blockingBefore': blocking_before,
  'blockingAfter': fcntl.fcntl(3, fcntl.F_GETFL) & os.O_NONBLOCK == 0,
  'child': out.stdout.strip(),
  'stderr': out.stderr,
}))
`;

interface Shared {
  blockingBefore: boolean;
  blockingAfter: boolean;
  child: string;
  stderr: string;
}

async function adoptShared(kind: 'bound' | 'listening'): Promise<Shared> {
  const result = await run('python3', ['-c', SHARED_SOCKET, process.execPath, requireDist(), kind]);
  expect(result.code, result.stderr).toBe(0);
  return verdict<Shared>(result);
}

describe('adopt() checks the fd before it sets O_NONBLOCK', () => {
  test('a regular file opened blocking keeps its flags', () => {
    const dir = opened.tempDir('gl-adopt-');
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r');
    try {
      const before = fdFlags(fd);
      expect(before & O_NONBLOCK).toBe(0);
      expect(adoptRefused(fd)).toContain('must be a socket');
      expect(fdFlags(fd)).toBe(before);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('adopt(0) on a blocking Unix-socket stdin leaves stdin blocking', async () => {
    const result = await run(process.execPath, ['-e', ADOPT_STDIN, requireDist()], { stdio: ['pipe', 'pipe', 'pipe'] });
    expect(result.code, result.stderr).toBe(0);
    const { before, after, message } = verdict<{ before: number; after: number; message: string }>(result);
    expect(before & O_NONBLOCK).toBe(0);
    expect(message).toContain('must be a TCP socket');
    expect(after).toBe(before);
  });

  test("a bound, not listening, TCP socket held by another process keeps that process's blocking mode", async () => {
    const shared = await adoptShared('bound');
    expect(shared.child).toContain('must be a listening socket');
    expect(shared).toMatchObject({ blockingBefore: true, blockingAfter: true });
  });

  test('a listening socket is adopted, and becomes non-blocking for every process that holds it', async () => {
    const shared = await adoptShared('listening');
    expect(shared.child, shared.stderr).toBe('adopted');
    expect(shared).toMatchObject({ blockingBefore: true, blockingAfter: false });
  });
});
