// The framework recipes of examples/ run as a user runs them: a child
// process on a loopback port, 64 clients of the kit on it (32 on fresh
// connections, 32 keep-alive), then SIGTERM in the middle of the load.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { ERROR_KINDS, runUnderLoad, type LoadReport } from '../../src/testing/index.js';
import { Lines, repoRoot, requireDist } from './children.js';
import { request } from './clients.js';
import type { Opened } from './opened.js';
import { waitFor, within } from './wait.js';

/** Far above one probe's round trip: the window in which /readyz must already say 503. */
export const PRE_STOP_DELAY_MS = 5000;
const CLIENTS_PER_KIND = 32;
const RESPONSES_BEFORE_SIGNAL = 300;
const emptyKinds = Object.fromEntries(ERROR_KINDS.map((kind) => [kind, 0]));

export interface RecipeRun {
  /** /readyz before the signal. */
  readyBefore: number;
  /** The first /readyz answer after the signal that was not 200, and its Connection header. */
  readyAfter: { status: number; connection: string | undefined };
  /** Whether the process was still running when /readyz answered 503 (the pre-stop phase). */
  aliveAtNotReady: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  reports: LoadReport[];
  stderr: string;
}

/** Runs examples/`file`, loads it, sends SIGTERM under the load and reports what the clients saw. */
export async function recipeUnderLoad(opened: Opened, file: string): Promise<RecipeRun> {
  requireDist();
  const child = opened.child(
    spawn(process.execPath, [path.join(repoRoot, 'examples', file)], {
      cwd: repoRoot,
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', PRE_STOP_DELAY: String(PRE_STOP_DELAY_MS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<RecipeRun['exit']>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = new Lines(child.stdout!);
  const listening = await Promise.race([
    lines.find((line) => /^listening on port \d+$/.test(line), `${file} to listen`),
    exited.then((exit) => Promise.reject(new Error(`${file} exited (${exit.code ?? exit.signal}): ${stderr}`))),
  ]);
  const port = Number(listening.slice('listening on port '.length));
  const readyBefore = (await request(port, { path: '/readyz' })).status;

  let responses = 0;
  const counts = [0, 0];
  const stop = new AbortController();
  const loads = (['new', 'keep-alive'] as const).map((connection, index) =>
    runUnderLoad({
      url: `http://127.0.0.1:${port}/`,
      connection,
      concurrency: CLIENTS_PER_KIND,
      duration: 3_600_000,
      progressInterval: 50,
      signal: stop.signal,
      onProgress: (progress) => {
        counts[index] = progress.responses;
        responses = counts[0]! + counts[1]!;
      },
    }),
  );
  let readyAfter: RecipeRun['readyAfter'] | undefined;
  let aliveAtNotReady = false;
  try {
    await waitFor(`${RESPONSES_BEFORE_SIGNAL} responses from ${file}`, () => responses >= RESPONSES_BEFORE_SIGNAL);
    child.kill('SIGTERM');
    await waitFor(`/readyz of ${file} to turn`, async () => {
      const reply = await request(port, { path: '/readyz' });
      if (reply.status === 200) return false;
      aliveAtNotReady = child.exitCode === null && child.signalCode === null;
      const connection = reply.headers.connection;
      readyAfter = { status: reply.status, connection: Array.isArray(connection) ? connection.join() : connection };
      return true;
    });
  } finally {
    await within(exited, `${file} to exit after SIGTERM`).finally(() => stop.abort());
  }
  return { readyBefore, readyAfter: readyAfter!, aliveAtNotReady, exit: await exited, reports: await Promise.all(loads), stderr };
}

/**
 * What a recipe must show: /readyz 200, then 503 with `Connection: close`
 * while the process still serves (the pre-stop phase), exit 0, every request
 * answered 200 except those refused once the listener had closed, no reset.
 */
export function expectCleanShutdown(run: RecipeRun): void {
  expect(run.readyBefore).toBe(200);
  expect(run.readyAfter).toEqual({ status: 503, connection: 'close' });
  expect(run.aliveAtNotReady).toBe(true);
  expect(run.exit, run.stderr).toEqual({ code: 0, signal: null });
  for (const report of run.reports) {
    expect(report.kinds, `${report.connection}: ${JSON.stringify(report.examples)}`).toEqual({ ...emptyKinds, refused: report.kinds.refused });
    expect(report.httpErrors).toBe(0);
    expect(report.ok).toBeGreaterThan(0);
    expect(report.requests - report.ok).toBe(report.kinds.refused);
  }
}
