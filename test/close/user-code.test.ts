// User code that throws inside the close, and close routes taken in an
// unusual order, in a real process: a user bug is reported on its own tick
// (an uncaught exception, as Node reports a throwing listener of its own
// events) and never stops the close — the promise settles, 'close' is
// emitted, the port refuses new clients, the server's 'close' fires.
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { requireDist, run, verdict } from '../helpers/kit.js';

const child = path.join(__dirname, '..', 'helpers', 'user-code-child.mjs');

interface Outcome {
  uncaught: string[];
  warnings: string[];
  closeResolved: boolean;
  listenerClosed: boolean;
  serverClosed: boolean;
  serverCloseCallback: string | null;
  report: { openAtClose: number; served: number; ended: number; destroyed: number; protocol?: { drainHooks?: number } } | null;
  clientsAnswered: number;
  clientErrors: string[];
  newClient: string | null;
  hung: boolean;
  fatal?: string;
  afterResume?: string;
}

async function scenario(name: string): Promise<Outcome> {
  const result = await run(process.execPath, [child, requireDist(), name], { killAfterMs: 30_000 });
  if (result.code !== 0) throw new Error(`the child exited with ${result.code ?? result.signal}: ${result.stderr}`);
  return verdict<Outcome>(result);
}

describe('user code that throws never stops the close', () => {
  test("a throwing 'draining' listener: reported once; the drain goes on, the listener closes, new clients are refused", async () => {
    const outcome = await scenario('draining-throws');
    expect(outcome).toMatchObject({
      hung: false,
      uncaught: ["'draining' listener threw"],
      closeResolved: true,
      listenerClosed: true,
      newClient: 'ECONNREFUSED',
      clientErrors: [],
      report: { openAtClose: 2, served: 2, ended: 0, destroyed: 0 },
    });
  });

  test("the same through server.close(): its callback and the server's 'close' come", async () => {
    const outcome = await scenario('draining-throws-server-close');
    expect(outcome).toMatchObject({
      hung: false,
      uncaught: ["'draining' listener threw"],
      closeResolved: true,
      listenerClosed: true,
      serverClosed: true,
      serverCloseCallback: 'ok',
      newClient: 'ECONNREFUSED',
      clientErrors: [],
    });
  });

  test("a throwing 'close' listener: the close promise has already resolved", async () => {
    const outcome = await scenario('close-listener-throws');
    expect(outcome).toMatchObject({
      hung: false,
      uncaught: ["'close' listener threw"],
      closeResolved: true,
      listenerClosed: true,
      newClient: 'ECONNREFUSED',
    });
  });

  test('a throwing onDrain hook: every connection still gets its hook, the deadline ends them, the listener closes', async () => {
    const outcome = await scenario('net-ondrain-throws');
    expect(outcome).toMatchObject({
      hung: false,
      uncaught: ['onDrain threw', 'onDrain threw'],
      closeResolved: true,
      listenerClosed: true,
      newClient: 'ECONNREFUSED',
      clientErrors: [],
      report: { openAtClose: 2, ended: 2, protocol: { drainHooks: 2 } },
    });
  });
});

describe('close routes', () => {
  test('listen(server, { signal }), abort, then resume(): no crash, the close it started is simply aborted', async () => {
    const outcome = await scenario('signal-then-resume');
    expect(outcome).toMatchObject({
      hung: false,
      uncaught: [],
      afterResume: 'accepting',
      closeResolved: true,
      listenerClosed: true,
      newClient: 'ECONNREFUSED',
    });
    expect(outcome.fatal).toBeUndefined();
  });
});
