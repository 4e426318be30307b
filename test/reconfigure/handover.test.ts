// Restart across real processes with listen(server, { handover }): each new
// process takes the listening socket over from the running one through its
// control socket (SCM_RIGHTS), starts accepting, and the old one retires.
// Under load, a restart every 500 ms, 20 times: no request fails, nobody is
// reset or refused. The same load with close-then-listen restarts is refused
// in between: the test proves its own teeth. The load kit's runRestarts
// starts, restarts and reaps the processes (test/helpers/restart-child.mjs).
import { afterEach, describe, expect, test } from 'vitest';
import { runRestarts } from '../../src/testing/index.js';
import { stablePort } from '../helpers/kit.js';
import { RestartDir } from '../helpers/restarts.js';

const RESTARTS = 20;
const EVERY_MS = 500;
const CONCURRENCY = 32;

let work: RestartDir | undefined;
afterEach(() => {
  work?.dispose();
  work = undefined;
});

async function restartsUnderLoad(mode: 'handover' | 'plain', connection: 'new' | 'keep-alive') {
  work = new RestartDir();
  return runRestarts({
    command: work.command(mode, await stablePort()),
    mode: mode === 'handover' ? 'handover' : 'close-then-listen',
    url: work.url,
    ca: work.cert,
    restarts: RESTARTS,
    every: EVERY_MS,
    concurrency: CONCURRENCY,
    connection,
    exitTimeout: 20_000,
  });
}

describe('restart with handover, 20 times, one every 500 ms, 32 clients', () => {
  test.each(['new', 'keep-alive'] as const)('%s connections: 0 failed, 0 reset, 0 refused; every old process retires and exits by itself; the last closes cleanly', { timeout: 180_000 }, async (connection) => {
    const report = await restartsUnderLoad('handover', connection);
    expect(report.kinds).toEqual({ reset: 0, refused: 0, closed: 0, retryable: 0, tls: 0, timeout: 0, other: 0 });
    expect(report.responses).toBe(report.requests);
    expect(report.httpErrors).toBe(0);
    expect(report.restarts).toHaveLength(RESTARTS);
    const processes = report.processes!;
    expect(processes).toHaveLength(RESTARTS + 1);
    // Every process but the last handed over and exited with 0 by itself,
    // never signalled and within exitTimeout. (Restarts begin every 500 ms
    // whatever the last one took, so on a busy machine a retired process may
    // still be draining when the next successor starts: how many are alive at
    // once is the machine's pace, not an outcome.)
    for (const server of processes.slice(0, -1)) {
      expect(server.events.some((e) => e.event === 'handover')).toBe(true);
      expect(server.signalledAtMs).toBeNull();
      expect(server.killed).toBe(false);
      expect(server.exitCode).toBe(0);
    }
    // The last one, sent SIGTERM once the load ended.
    expect(processes.at(-1)!.exitCode).toBe(0);
  });
});

test('the same load with close-then-listen restarts: clients are refused in between', { timeout: 180_000 }, async () => {
  const report = await restartsUnderLoad('plain', 'new');
  expect(report.kinds.refused).toBeGreaterThan(0);
  expect(report.kinds.reset).toBe(0);
  expect(report.processes!.every((server) => server.exitCode === 0)).toBe(true);
});
