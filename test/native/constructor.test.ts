// The native handle's class is reachable from JS (handle.constructor), but
// only the addon's own open() and adopt() may make a handle: called from JS,
// with any argument, it throws a TypeError and never touches an fd. Runs in a
// child whose stdin (fd 0) is a socket, with GC forced, so a handle that
// wrapped fd 0 and was closed or finalized would show.
import { describe, expect, test } from 'vitest';
import { repoRoot, run, verdict } from '../helpers/kit.js';

const FORGE = `
const fs = require('node:fs');
const { loadBinding } = require(process.argv[1]);
const link = (fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd); } catch { return undefined; } };
const fds = () => Object.fromEntries(fs.readdirSync('/proc/self/fd').map((fd) => [fd, link(fd)]).filter(([, l]) => l !== undefined));
(async () => {
  const binding = loadBinding();
  const handle = binding.open(4, '127.0.0.1', 0, 8, false, false);
  const Handle = handle.constructor;
  const stdin = link(0);
  const before = fds();
  const attempts = [[0], ['x'], [], [{}], [-1], [handle.fd], [0, 0], [undefined, 0]];
  const outcomes = [];
  for (const args of attempts) {
    try {
      const forged = new Handle(...args);
      outcomes.push('constructed fd ' + forged.fd);
      forged.close();
    } catch (error) {
      outcomes.push(error.name + ' ' + error.code);
    }
  }
  try { Handle(0); outcomes.push('called'); } catch (error) { outcomes.push(error.name + ' ' + error.code); }
  for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 10)); }
  const after = fds();
  let port;
  try { port = handle.address().port > 0; } catch (error) { port = error.code; }
  handle.close();
  console.log(JSON.stringify({ outcomes, stdinIntact: link(0) === stdin && stdin !== undefined, fdsUnchanged: JSON.stringify(after) === JSON.stringify(before), port }));
})();
`;

describe('the native handle class', () => {
  test('cannot be constructed from JS: TypeError, no fd wrapped, stdin never closed', async () => {
    const result = await run(
      process.execPath,
      ['--expose-gc', '-e', FORGE, `${repoRoot}/dist/core/native.js`],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    expect(result.code, result.stderr).toBe(0);
    const outcome = verdict<{ outcomes: string[]; stdinIntact: boolean; fdsUnchanged: boolean; port: boolean }>(result);
    expect(outcome.outcomes).toEqual(Array(9).fill('TypeError ERR_ILLEGAL_CONSTRUCTOR'));
    expect(outcome).toMatchObject({ stdinIntact: true, fdsUnchanged: true, port: true });
  });
});
