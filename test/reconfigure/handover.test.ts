// Restart across real processes with listen(server, { handover }): each new
// process takes the listening socket over from the running one through its
// control socket (SCM_RIGHTS), starts accepting, and the old one retires.
// Under load, a restart every 500 ms, 20 times: no request fails, nobody is
// reset or refused. The same load with close-then-listen restarts is refused
// in between: the test proves its own teeth.
import { afterEach, describe, expect, test } from 'vitest';
import { runUnderLoad } from '../../src/testing/index.js';
import { waitFor } from '../helpers/close-fixtures.js';
import { RestartBench, type ServerProcess } from '../helpers/restarts.js';

const RESTARTS = 20;
const EVERY_MS = 500;
const CONCURRENCY = 32;

let bench: RestartBench | undefined;
afterEach(() => {
  bench?.dispose();
  bench = undefined;
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function restartsUnderLoad(mode: 'handover' | 'plain', connection: 'new' | 'keep-alive') {
  bench = new RestartBench();
  const b = bench;
  let current: ServerProcess = await b.start(mode, 0);
  const port = current.port;
  const stop = new AbortController();
  const report = await runUnderLoad({
    url: `https://127.0.0.1:${port}/`,
    ca: b.cert,
    concurrency: CONCURRENCY,
    connection,
    duration: 120_000,
    duringAt: 200,
    signal: stop.signal,
    during: async () => {
      for (let i = 0; i < RESTARTS; i++) {
        await sleep(EVERY_MS);
        if (mode === 'handover') {
          current = await b.start('handover', port);
        } else {
          // Close, then listen: the old process exits once drained.
          const old = current;
          old.child.kill('SIGTERM');
          await old.exited;
          current = await b.start('plain', port);
        }
      }
      await waitFor('every old process to exit', () => b.alive === 1, { tries: 1500, intervalMs: 20 });
      await sleep(200);
      stop.abort();
    },
  });
  current.child.kill('SIGTERM');
  const code = await current.exited;
  return { report, code, processes: b.processes, maxAlive: b.maxAlive };
}

describe('restart with handover, 20 times, one every 500 ms, 32 clients', () => {
  test.each(['new', 'keep-alive'] as const)('%s connections: 0 failed, 0 reset, 0 refused; at most two processes alive; the last closes cleanly', { timeout: 180_000 }, async (connection) => {
    const { report, code, processes, maxAlive } = await restartsUnderLoad('handover', connection);
    expect(report.kinds).toEqual({ reset: 0, refused: 0, closed: 0, retryable: 0, tls: 0, timeout: 0, other: 0 });
    expect(report.responses).toBe(report.requests);
    expect(report.httpErrors).toBe(0);
    expect(processes).toHaveLength(RESTARTS + 1);
    // Every process but the last handed over and exited with 0 by itself.
    for (const server of processes.slice(0, -1)) {
      expect(server.saw('handover')).toBe(true);
      expect(await server.exited).toBe(0);
    }
    expect(maxAlive).toBeLessThanOrEqual(2);
    expect(code).toBe(0);
  });
});

test('the same load with close-then-listen restarts: clients are refused in between', { timeout: 180_000 }, async () => {
  const { report, code } = await restartsUnderLoad('plain', 'new');
  expect(report.kinds.refused).toBeGreaterThan(0);
  expect(report.kinds.reset).toBe(0);
  expect(code).toBe(0);
});
