// Issue 4, test 2: close() in the middle of a fresh-TLS-connection load
// resets no client.
import https from 'node:https';
import { afterEach, expect, test } from 'vitest';
import { listen, type CloseReport } from '../../src/index.js';
import { Opened, certificate, codeOf } from '../helpers/kit.js';
import { tally } from '../helpers/load.js';

const CONCURRENCY = 64;
const RESPONSES_BEFORE_CLOSE = 200;
// A hang bound per client, far above what the test needs.
const MAX_REQUESTS_PER_CLIENT = 2_000;

const opened = new Opened();
afterEach(() => opened.dispose());

/** One GET on a fresh TLS connection; resolves with 'ok' or the error's code. */
function request(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode === 200 ? 'ok' : `status ${response.statusCode}`));
        response.on('error', (error) => resolve(codeOf(error) ?? error.message));
      },
    );
    req.on('error', (error) => resolve(codeOf(error) ?? error.message));
  });
}

test('64 clients on fresh TLS connections, close() mid-load: no ECONNRESET, no EPIPE, the listener closes', async () => {
  const server = https.createServer(certificate(), (_request, response) => {
    setTimeout(() => response.end('ok\n'), 1);
  });
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  const { port } = listener.address();
  const outcomes: string[] = [];
  let served = 0;
  let closing: Promise<CloseReport> | undefined;
  let closeDone = false;

  const startClose = (): void => {
    closing = listener.close({ timeout: 10_000 });
    closing.then(() => (closeDone = true), () => (closeDone = true));
  };

  const client = async (): Promise<void> => {
    for (let i = 0; i < MAX_REQUESTS_PER_CLIENT && !closeDone; i++) {
      const outcome = await request(port);
      outcomes.push(outcome);
      if (outcome === 'ok' && ++served === RESPONSES_BEFORE_CLOSE) startClose();
      // A refusal means the listener is shut down: this client is done.
      if (outcome === 'ECONNREFUSED') break;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));

  expect(closing).toBeDefined();
  const report = await closing!;
  await opened.closed(listener);
  const counts = tally(outcomes, (outcome) => outcome);
  expect(counts.ECONNRESET ?? 0).toBe(0);
  expect(counts.EPIPE ?? 0).toBe(0);
  // Nothing but successes and clean refusals after the shutdown.
  expect(Object.keys(counts).filter((key) => key !== 'ok' && key !== 'ECONNREFUSED')).toEqual([]);
  expect(counts.ok).toBeGreaterThanOrEqual(RESPONSES_BEFORE_CLOSE);
  expect(listener.state).toBe('closed');
  expect(listener.count).toBe(0);
  expect(report.ended + report.destroyed).toBe(0);
  expect(report.served).toBe(report.openAtClose + report.accepted);
});
