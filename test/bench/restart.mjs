// Restarts under load: failed requests per restart, close-then-listen against
// a handover, and the same for replace() in one process. Not a test: it
// prints a table and writes bench-results/restart.json. Uses dist/ (build it
// first: npx tsc -p tsconfig.json).
//
//   node test/bench/restart.mjs [--duration 30] [--every 1000] [--concurrency 100]
//        [--connection new|keep-alive] [--replace-duration 10] [--replace-every 100]
//        [--out file.json]
//
// Processes: the package's load kit (runRestarts) runs --concurrency clients
// in this process (a fresh TLS connection per request by default) against
// dist/cli/restart-server.js, the demo's https server (1 ms of CPU per
// request), restarted once every --every ms for --duration ms:
//   close-then-listen  SIGTERM → listener.close() → exit, then the next process listens
//   handover           the next process takes the socket over, the old one drains and exits
// Each request's outcome is counted in the window of the restart it settled
// in. The refusal window of a restart is the time from its first refusal to
// its last (0 when none or one was refused); failed = requests without a
// complete response. The handover time is what the successor spends in
// listen() (connect to the control socket, receive the fd, check it, start
// accepting), from the CLOCK_MONOTONIC stamps the server prints around it:
// it includes the old process's answer, so its event loop's lag under load;
// 10 handovers with a single client give the cost without that.
//
// replace(): one server process (forked here) with listen(); every
// --replace-every ms for --replace-duration ms it is told to
// listener.replace() its server with a new one, under the same clients. Its
// figures: failed per replace, the refusal window, the time of the replace()
// call, and the time until the retired server had drained.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, certificate } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const distEntry = path.join(packageRoot, 'dist', 'index.mjs');
const testingEntry = path.join(packageRoot, 'dist', 'testing', 'index.mjs');
const demoApp = path.join(packageRoot, 'dist', 'cli', 'demo-app.js');
const restartServer = path.join(packageRoot, 'dist', 'cli', 'restart-server.js');

// The replace() variant's server, in its own process: listen(), then
// listener.replace() with a new server on each 'replace' message.
async function runReplaceServer() {
  const { listen } = await import(distEntry);
  const { createDemoServer } = await import(demoApp);
  const { key, cert } = await new Promise((resolve) => process.once('message', resolve));
  process.on('disconnect', () => process.exit(0));
  const make = () => {
    const server = createDemoServer('https', key, cert);
    server.on('tlsClientError', () => {});
    return server;
  };
  const listener = await listen(make(), { host: '127.0.0.1', port: 0 });
  const drained = [];
  const pending = new Set();
  process.on('message', (message) => {
    if (message.type === 'replace') {
      const next = make();
      const before = process.hrtime.bigint();
      const retired = listener.replace(next);
      const replaceUs = Number(process.hrtime.bigint() - before) / 1e3;
      const settled = retired.then(
        () => drained.push(Number(process.hrtime.bigint() - before) / 1e6),
        (error) => drained.push({ error: String(error) }),
      );
      pending.add(settled);
      settled.then(() => pending.delete(settled));
      process.send({ type: 'replaced', replaceUs });
    } else if (message.type === 'finish') {
      Promise.all(pending).then(() => process.send({ type: 'finished', drainedMs: drained }));
    }
  });
  process.send({ type: 'ready', port: listener.address().port });
}

function percentile(values, p) {
  const sorted = values.filter((v) => typeof v === 'number').sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const round2 = (value) => (value === null ? null : Math.round(value * 100) / 100);

function spread(values) {
  return { p50: round2(percentile(values, 50)), p99: round2(percentile(values, 99)), max: round2(percentile(values, 100)) };
}

/** The figures of one run of runRestarts. */
function figures(report) {
  const windows = report.restarts;
  const count = Math.max(1, windows.length);
  const failed = windows.map((w) => w.failed);
  return {
    restarts: windows.length,
    requests: report.requests,
    served: report.responses,
    failed: report.requests - report.responses,
    reset: report.kinds.reset,
    refused: report.kinds.refused,
    other: report.requests - report.responses - report.kinds.reset - report.kinds.refused,
    failedPerRestart: { mean: round2(failed.reduce((a, b) => a + b, 0) / count), ...spread(failed) },
    restartsWithFailures: failed.filter((n) => n > 0).length,
    refusalWindowMs: spread(windows.map((w) => w.refusalWindowMs)),
    // From the restart's start until the new server accepted (the callback: the server confirmed the replace()).
    restartMs: spread(windows.map((w) => w.doneMs - w.atMs)),
    // Achieved, from one restart's start to the next: longer than asked when a restart took longer.
    intervalMs: spread(windows.slice(1).map((w, i) => w.atMs - windows[i].atMs)),
    latencyMs: { p50: report.latency.p50, p99: report.latency.p99 },
    errors: report.errors,
  };
}

/** Handover timings from the server processes' own lines (CLOCK_MONOTONIC ms). */
function handoverTimes(processes) {
  const listenMs = [];
  const retireNoticeMs = [];
  for (const [i, server] of processes.entries()) {
    const listening = server.events.find((e) => e.event === 'listening');
    if (i === 0 || listening === undefined || !listening.handedOver) continue;
    listenMs.push(listening.listeningAt - listening.listenCalledAt);
    const handover = processes[i - 1].events.find((e) => e.event === 'handover');
    if (handover !== undefined) retireNoticeMs.push(handover.at - listening.listeningAt);
  }
  return { handedOver: listenMs.length, listenMs: spread(listenMs), retireNoticeMs: spread(retireNoticeMs) };
}

function line(label, f) {
  return (
    `  ${label.padEnd(18)} ${String(f.restarts).padStart(4)} restarts  failed/restart ${String(f.failedPerRestart.mean).padStart(7)}` +
    ` (max ${f.failedPerRestart.max})  refused ${String(f.refused).padStart(6)}  reset ${f.reset}  other ${f.other}` +
    `  refusal window p50/p99 ${f.refusalWindowMs.p50}/${f.refusalWindowMs.p99} ms  served ${f.served}`
  );
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '30' },
      every: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '100' },
      connection: { type: 'string', default: 'new' },
      'replace-duration': { type: 'string', default: '10' },
      'replace-every': { type: 'string', default: '100' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'restart.json') },
    },
  });
  for (const file of [distEntry, testingEntry, restartServer]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run "npx tsc -p tsconfig.json" first`);
  }
  const options = {
    durationS: Number(values.duration),
    everyMs: Number(values.every),
    concurrency: Number(values.concurrency),
    connection: values.connection,
    replaceDurationS: Number(values['replace-duration']),
    replaceEveryMs: Number(values['replace-every']),
  };
  const { runRestarts } = await import(testingEntry);
  const restarts = Math.max(1, Math.floor((options.durationS * 1000) / options.everyMs) - 1);
  const replaces = Math.max(1, Math.floor((options.replaceDurationS * 1000) / options.replaceEveryMs) - 1);
  console.log(
    `restart bench — Node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}; ` +
      `${options.concurrency} clients (${options.connection === 'new' ? 'a fresh TLS connection per request' : 'keep-alive'}); ` +
      `${restarts} process restarts, one every ${options.everyMs} ms; ${replaces} replace() calls, one every ${options.replaceEveryMs} ms`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-bench-restart-'));
  const { key, cert } = certificate();
  fs.writeFileSync(path.join(work, 'key.pem'), key, { mode: 0o600 });
  fs.writeFileSync(path.join(work, 'cert.pem'), cert);
  const load = { concurrency: options.concurrency, connection: options.connection, requestTimeout: 10_000 };
  const results = {};
  try {
    for (const mode of ['close-then-listen', 'handover']) {
      const report = await runRestarts({
        command: ({ port }) => [
          process.execPath, restartServer,
          '--port', String(port ?? 0), '--key', path.join(work, 'key.pem'), '--cert', path.join(work, 'cert.pem'),
          ...(mode === 'handover' ? ['--handover', path.join(work, 'control.sock')] : []),
        ],
        mode,
        url: (port) => `https://127.0.0.1:${port}/`,
        restarts,
        every: options.everyMs,
        ...load,
      });
      results[mode] = {
        ...figures(report),
        ...(mode === 'handover' ? { handover: handoverTimes(report.processes) } : {}),
        maxAlive: report.maxAlive,
        killed: report.processes.filter((p) => p.killed).length,
        windows: report.restarts.map(({ index, atMs, doneMs, failed, refused, reset, refusalWindowMs }) => ({
          index, atMs, doneMs, failed, refused, reset, refusalWindowMs,
        })),
      };
      console.log(line(mode, results[mode]));
    }

    // The handover's own cost, with the machine nearly idle: one client on a kept connection.
    const idle = await runRestarts({
      command: ({ port }) => [
        process.execPath, restartServer,
        '--port', String(port ?? 0), '--key', path.join(work, 'key.pem'), '--cert', path.join(work, 'cert.pem'),
        '--handover', path.join(work, 'control-idle.sock'),
      ],
      mode: 'handover',
      url: (port) => `https://127.0.0.1:${port}/`,
      restarts: 10,
      every: 300,
      concurrency: 1,
      connection: 'keep-alive',
    });
    results.handoverIdle = { ...figures(idle), handover: handoverTimes(idle.processes) };
    console.log(line('handover, 1 client', results.handoverIdle));

    const server = fork(fileURLToPath(import.meta.url), ['--replace-server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const next = (type) =>
        new Promise((resolve, reject) => {
          const onMessage = (message) => {
            if (message.type !== type) return;
            server.off('message', onMessage);
            server.off('exit', onExit);
            resolve(message);
          };
          const onExit = (code) => reject(new Error(`the replace() server exited with ${code}`));
          server.on('message', onMessage);
          server.once('exit', onExit);
        });
      const ready = next('ready');
      server.send({ key, cert });
      const { port } = await ready;
      const replaceUs = [];
      const report = await runRestarts({
        url: `https://127.0.0.1:${port}/`,
        restarts: replaces,
        every: options.replaceEveryMs,
        ...load,
        restart: async () => {
          const replaced = next('replaced');
          server.send({ type: 'replace' });
          replaceUs.push((await replaced).replaceUs);
        },
      });
      const finished = next('finished');
      server.send({ type: 'finish' });
      const { drainedMs } = await finished;
      results.replace = {
        ...figures(report),
        replaceCallUs: spread(replaceUs),
        retiredDrainedMs: spread(drainedMs),
        drainErrors: drainedMs.filter((d) => typeof d !== 'number'),
      };
      console.log(line('replace()', results.replace));
    } finally {
      server.disconnect();
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }

  const h = results.handover.handover;
  console.log('');
  console.log('| restart            | restarts | failed / restart (mean, max) | refused | reset | refusal window p50 / p99 / max | served |');
  console.log('|--------------------|----------|------------------------------|---------|-------|--------------------------------|--------|');
  for (const name of ['close-then-listen', 'handover', 'replace']) {
    const f = results[name];
    console.log(
      `| ${(name === 'replace' ? 'replace()' : name).padEnd(18)} | ${String(f.restarts).padEnd(8)} | ` +
        `${`${f.failedPerRestart.mean}, ${f.failedPerRestart.max}`.padEnd(28)} | ${String(f.refused).padEnd(7)} | ${String(f.reset).padEnd(5)} | ` +
        `${`${f.refusalWindowMs.p50} / ${f.refusalWindowMs.p99} / ${f.refusalWindowMs.max} ms`.padEnd(30)} | ${String(f.served).padEnd(6)} |`,
    );
  }
  const hi = results.handoverIdle.handover;
  console.log(
    `handover: listen() in the successor (connect, receive the fd, check it, start accepting) under load p50 ${h.listenMs.p50} ms, ` +
      `p99 ${h.listenMs.p99} ms over ${h.handedOver} handovers; the old process heard ${h.retireNoticeMs.p50} ms (p50) later. ` +
      `With 1 client: p50 ${hi.listenMs.p50} ms, p99 ${hi.listenMs.p99} ms`,
  );
  console.log(
    `replace(): the call p50 ${results.replace.replaceCallUs.p50} µs, p99 ${results.replace.replaceCallUs.p99} µs; ` +
      `the retired server drained p50 ${results.replace.retiredDrainedMs.p50} ms, p99 ${results.replace.retiredDrainedMs.p99} ms`,
  );
  writeResult(values.out, {
    ...machine('restart'),
    config: {
      ...options,
      restarts,
      replaces,
      clients: 'runRestarts (graceful-listener/testing) in the bench process',
      server: 'dist/cli/restart-server.js: https, createDemoServer (1 ms CPU per request)',
    },
    summary: results,
  });
}

if (process.argv[2] === '--replace-server') await runReplaceServer();
else await runBench();
