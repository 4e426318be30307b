// A real HAProxy in front of two backend processes, under load through it
// (64 clients: 32 on fresh connections, 32 on keep-alive ones), while both
// backends are rolled one after the other, five rounds, the way a rollout
// does it: a new backend starts on its own port and joins (HAProxy's runtime
// API fills a free server slot), and once HAProxy's health checks find it up,
// the old one gets SIGTERM. Twice, with the same HAProxy settings:
// (a) backends built on this package: /readyz turns 503 at the signal, the
//     server keeps serving through the pre-stop delay while HAProxy's checks
//     take it out of rotation, then listener.close() drains it;
// (b) backends that server.close() on SIGTERM, without readiness.
// The figure is what HAProxy's clients saw: every request not answered
// below 400. (a) must be 0; (b) must not be (the test has teeth).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { runUnderLoad, type LoadReport } from '../../src/testing/index.js';
import { Haproxy, haproxyBinary } from '../helpers/haproxy.js';
import { Lines, Opened, repoRoot, requireDist, within } from '../helpers/kit.js';

type Mode = 'graceful' | 'server-close';

const ROUNDS = 5;
const BACKENDS = 2;
// Two at the start, one more per roll: a slot is never given a second address.
const SLOTS = BACKENDS + ROUNDS * BACKENDS;
// Far above HAProxy's check interval (100 ms): the time it has to notice the 503.
const PRE_STOP_DELAY_MS = 1000;
const CLIENTS_PER_KIND = 32;

// The settings the README's "Behind HAProxy" recommends.
const DEFAULTS = [
  'timeout connect 2s',
  'timeout client 30s',
  'timeout server 30s',
  'timeout http-keep-alive 10s',
  'retries 3',
  'option redispatch 1',
  'retry-on conn-failure',
];
const BACKEND = [
  'option httpchk GET /readyz',
  'http-check expect status 200',
  `server-template web 1-${SLOTS} 127.0.0.1:9 check inter 100ms fall 1 rise 1 disabled`,
];

const opened = new Opened();
afterEach(() => opened.dispose());

interface Backend {
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

async function startBackend(mode: Mode): Promise<Backend> {
  const script = path.join(repoRoot, 'test', 'helpers', 'lb-backend.mjs');
  const child = opened.child(
    spawn(process.execPath, [script, requireDist(), mode, String(PRE_STOP_DELAY_MS)], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = new Lines(child.stdout!, (line) => JSON.parse(line) as { port: number });
  const { port } = await Promise.race([
    lines.next(`the ${mode} backend's port`),
    exited.then(({ code, signal }) => Promise.reject(new Error(`the ${mode} backend exited (${code ?? signal})`))),
  ]);
  return { port, exited, kill: (signal) => child.kill(signal) };
}

/** Everything the clients saw during the rolls of one mode. */
interface RollResult {
  failed: number;
  requests: number;
  exits: { code: number | null; signal: NodeJS.Signals | null }[];
  reports: LoadReport[];
}

async function rollUnderLoad(binary: string, mode: Mode): Promise<RollResult> {
  const dir = opened.tempDir(`gl-haproxy-${mode}-`);
  const haproxy = await Haproxy.start(opened, binary, dir, { defaults: DEFAULTS, backend: BACKEND });
  opened.cleanup(() => haproxy.stop());
  const free = Array.from({ length: SLOTS }, (_, index) => `web${index + 1}`);
  const serving = new Map<string, Backend>();
  const up = (slot: string) => haproxy.until(`${slot} up in HAProxy`, (slots) => slots.get(slot)?.operational === 2);
  const down = (slot: string) => haproxy.until(`${slot} down in HAProxy`, (slots) => slots.get(slot)?.operational === 0);

  /** A new backend into a fresh slot; resolves once HAProxy's checks found it up. */
  const join = async (): Promise<string> => {
    const backend = await startBackend(mode);
    const slot = free.shift()!;
    await haproxy.command(`set server app/${slot} addr 127.0.0.1 port ${backend.port}`);
    await haproxy.command(`set server app/${slot} state ready`);
    await up(slot);
    serving.set(slot, backend);
    return slot;
  };

  for (let i = 0; i < BACKENDS; i++) await join();
  const stop = new AbortController();
  const url = `http://127.0.0.1:${haproxy.port}/`;
  const loads = (['new', 'keep-alive'] as const).map((connection) =>
    runUnderLoad({ url, connection, concurrency: CLIENTS_PER_KIND, duration: 3_600_000, signal: stop.signal }),
  );
  const exits: Promise<{ code: number | null; signal: NodeJS.Signals | null }>[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const slot of [...serving.keys()]) {
        await join();
        const old = serving.get(slot)!;
        serving.delete(slot);
        old.kill('SIGTERM');
        exits.push(old.exited);
        // HAProxy's own checks take it out (a refused check for server.close()).
        await down(slot);
      }
    }
    // The drains end under load too.
    await within(Promise.all(exits), `the ${mode} backends rolled out to exit`);
  } finally {
    stop.abort();
  }
  const reports = await Promise.all(loads);
  for (const backend of serving.values()) backend.kill('SIGTERM');
  await within(Promise.all([...serving.values()].map((backend) => backend.exited)), 'the last backends to exit');
  await haproxy.stop();
  const requests = reports.reduce((sum, report) => sum + report.requests, 0);
  const ok = reports.reduce((sum, report) => sum + report.ok, 0);
  return { failed: requests - ok, requests, exits: await Promise.all(exits), reports };
}

test('HAProxy in front, both backends rolled five times under load: readiness + pre-stop + listener.close() fails no request, server.close() does', async (context) => {
  const binary = haproxyBinary();
  if (binary === undefined) {
    const why = 'haproxy is not installed (apt-get install haproxy; .ci/run does)';
    console.warn(`skipped: ${why}`);
    context.skip(why);
    return;
  }
  const graceful = await rollUnderLoad(binary, 'graceful');
  const serverClose = await rollUnderLoad(binary, 'server-close');
  const rolls = ROUNDS * BACKENDS;
  const describe = (result: RollResult) =>
    `${result.failed} failed of ${result.requests} (${(result.failed / rolls).toFixed(1)} per backend roll) ` +
    JSON.stringify(result.reports.map((report) => ({ connection: report.connection, status: report.status, errors: report.errors })));
  console.log(
    `HAProxy, ${rolls} backend rolls under 64 clients:\n` +
      `  readiness + pre-stop + listener.close(): ${describe(graceful)}\n` +
      `  server.close(), no readiness:            ${describe(serverClose)}`,
  );
  for (const result of [graceful, serverClose]) {
    expect(result.exits).toEqual(Array.from({ length: rolls }, () => ({ code: 0, signal: null })));
    for (const report of result.reports) expect(report.responses).toBeGreaterThan(0);
  }
  expect(graceful.failed).toBe(0);
  expect(serverClose.failed).toBeGreaterThan(0);
}, 120_000);
