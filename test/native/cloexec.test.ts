import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { O_CLOEXEC, O_NONBLOCK, Opened, acceptExactly, fdFlags, fdTarget, run, verdict, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

// Prints every fd the child process has, with what it points to.
const LIST_FDS = `
const fs = require('node:fs');
const fds = {};
for (const entry of fs.readdirSync('/proc/self/fd')) {
  try { fds[entry] = fs.readlinkSync('/proc/self/fd/' + entry); } catch {}
}
console.log(JSON.stringify(Object.values(fds)));
`;

async function childFds(stdio: (number | 'pipe' | 'ignore')[] = ['ignore', 'pipe', 'pipe']): Promise<string[]> {
  const result = await run(process.execPath, ['-e', LIST_FDS], { stdio });
  expect(result.code).toBe(0);
  return verdict<string[]>(result);
}

describe('CLOEXEC', () => {
  test('a child spawned while a listener, an adopted duplicate and an accepted fd are open inherits none of them', async () => {
    const listener = opened.listenSocket(await ListenSocket.open({ host: '127.0.0.1' }));
    const { port } = listener.address();
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const adopted = opened.listenSocket(ListenSocket.adopt(server));
      const client = opened.raw(port);
      const { fds } = await acceptExactly(listener, opened, 1);
      await waitFor('client connected', () => client.connected);
      const accepted = fds[0]!;

      const targets = [listener.fd, adopted.fd, accepted].map((fd) => fdTarget(fd));
      for (const target of targets) expect(target).toMatch(/^socket:\[\d+\]$/);
      // Every one of them is CLOEXEC in this process, and non-blocking.
      for (const fd of [listener.fd, adopted.fd, accepted]) {
        expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
        expect(fdFlags(fd) & O_NONBLOCK).toBe(O_NONBLOCK);
      }

      const inherited = await childFds();
      for (const target of targets) expect(inherited).not.toContain(target);

      // The listing does see a socket that is handed down on purpose.
      const passedOn = await childFds(['ignore', 'pipe', 'pipe', accepted]);
      expect(passedOn).toContain(targets[2]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
