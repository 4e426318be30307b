// Soak: many closes of one listener under fresh-TLS load, each followed by a
// re-listen on the same port, in one server process. Not a test: it prints
// per-cycle lines and a table and writes bench-results/soak.json. Uses dist/
// (build it first: npx tsc -p tsconfig.json).
//
//   node --expose-gc test/bench/soak.mjs [--cycles 100] [--node-cycles 10]
//        [--concurrency 48] [--duration 1000] [--burn-ms 1] [--max-seconds 300]
//        [--out file.json]
//
// This process is the server: an https server with a small handler (--burn-ms
// of CPU, then "ok"), fed by listen() from dist/. A forked child runs the
// package's own load kit (graceful-listener/testing runUnderLoad, a fresh TLS
// connection per request) for --duration ms per cycle; halfway through, it
// asks this process to close, and this process runs listener.close(), then
// listen() again on the same port while the load goes on. Clients refused
// between the shutdown and the re-listen back off 20 ms and try again.
//
// Node's own path runs the same loop for --node-cycles: server.listen() on a
// plain https server, server.close() mid-load, server.listen() on the same
// port once its callback ran.
//
// Resets are the kit's `reset` kind: ECONNRESET / EPIPE from a syscall, i.e.
// after the kernel completed the handshake (a refused SYN is ECONNREFUSED).
// Open fds and RSS of this process are read between cycles, with the load
// stopped and after a forced GC (--expose-gc): at the start (after one warm-up
// cycle), after 10 cycles and at the end. Growth per cycle is taken from
// cycle 10 to the end, past the first cycles' lazy allocations.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, certificate, median, openFds, settle } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const distEntry = path.join(packageRoot, 'dist', 'index.mjs');
const testingEntry = path.join(packageRoot, 'dist', 'testing', 'index.mjs');
const CHECKPOINT_CYCLE = 10;

if (process.argv[2] === '--clients') await runClients();
else await runBench();

function burn(ms) {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

// The load side, in its own process: one runUnderLoad per cycle, whose
// during() is the server's close and re-listen (asked for over IPC).
async function runClients() {
  const { runUnderLoad } = await import(testingEntry);
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (message) => {
    if (message.type !== 'run') return;
    const during = () =>
      new Promise((resolve, reject) => {
        const onReply = (reply) => {
          if (reply.type !== 'closed') return;
          process.removeListener('message', onReply);
          if (reply.error !== undefined) reject(new Error(reply.error));
          else resolve(reply.result);
        };
        process.on('message', onReply);
        process.send({ type: 'close' });
      });
    try {
      const report = await runUnderLoad({
        url: `https://127.0.0.1:${message.port}/`,
        concurrency: message.concurrency,
        duration: message.duration,
        connection: 'new',
        requestTimeout: 5000,
        duringTimeout: 20_000,
        during,
      });
      const { requests, ok, responses, kinds, errors, examples, latency, during: info } = report;
      process.send({ type: 'report', report: { requests, ok, responses, kinds, errors, examples, latency, during: info } });
    } catch (error) {
      process.send({ type: 'report', error: String(error?.stack ?? error), report: error?.report });
    }
  });
}


async function snapshot(cycle) {
  await settle();
  const { rss, heapUsed } = process.memoryUsage();
  return { cycle, fds: openFds(), rssMiB: round1(rss / 2 ** 20), heapMiB: round1(heapUsed / 2 ** 20) };
}

/**
 * The server side of one variant. `closeAndRelisten()` is the close under
 * test followed by a listen on the same port; it resolves with the figures
 * of the close.
 */
async function listenerVariant(tls, burnMs) {
  const { listen } = await import(distEntry);
  const server = https.createServer(tls, (_request, response) => {
    burn(burnMs);
    response.end('ok\n');
  });
  let listener = await listen(server, { host: '127.0.0.1' });
  const port = listener.address().port;
  return {
    port,
    async closeAndRelisten(relisten) {
      const start = performance.now();
      const report = await listener.close({ timeout: 10_000 });
      const closeMs = performance.now() - start;
      if (relisten) listener = await listen(server, { host: '127.0.0.1', port });
      return {
        closeMs,
        relistenMs: performance.now() - start - closeMs,
        queuedAtClose: report.queuedAtClose,
        handshakingAtClose: report.handshakingAtClose,
        handshakesAbandoned: report.handshakesAbandoned,
        accepted: report.accepted,
        ended: report.ended,
        destroyed: report.destroyed,
        queueLost: report.queueLost,
      };
    },
  };
}

async function nodeVariant(tls, burnMs) {
  const { ListenSocket } = await import(distEntry);
  const server = https.createServer(tls, (_request, response) => {
    burn(burnMs);
    response.end('ok\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    async closeAndRelisten(relisten) {
      // A dup of Node's fd, only to read the queue depth at the close; closed
      // first, or it would keep the socket listening.
      const probe = ListenSocket.adopt(server);
      const start = performance.now();
      const queuedAtClose = probe.pending().queued;
      probe.close();
      await new Promise((resolve) => server.close(resolve));
      const closeMs = performance.now() - start;
      if (relisten) await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
      return { closeMs, relistenMs: performance.now() - start - closeMs, queuedAtClose };
    },
  };
}

/** Runs `cycles` loaded cycles against `variant`; stops early at `deadline` (performance.now()). */
async function soak(name, variant, clients, options, cycles, deadline, onCheckpoint) {
  const results = [];
  const next = (type) =>
    new Promise((resolve, reject) => {
      const onMessage = (message) => {
        if (message.type !== type) return;
        clients.removeListener('message', onMessage);
        clients.removeListener('exit', onExit);
        resolve(message);
      };
      const onExit = (code) => reject(new Error(`the load process exited with ${code}`));
      clients.on('message', onMessage);
      clients.once('exit', onExit);
    });
  for (let cycle = 1; cycle <= cycles; cycle++) {
    if (performance.now() > deadline) {
      console.log(`  ${name}: --max-seconds reached after ${cycle - 1} cycles`);
      break;
    }
    clients.send({ type: 'run', port: variant.port, concurrency: options.concurrency, duration: options.duration });
    await next('close');
    let close;
    try {
      close = await variant.closeAndRelisten(true);
      clients.send({ type: 'closed', result: close });
    } catch (error) {
      clients.send({ type: 'closed', error: String(error) });
      throw error;
    }
    const { report, error } = await next('report');
    if (error !== undefined) throw new Error(`cycle ${cycle}: ${error}`);
    const { kinds, errors } = report;
    const result = {
      cycle,
      ok: report.ok,
      requests: report.requests,
      resets: kinds.reset,
      refused: kinds.refused,
      closed: kinds.closed,
      timeout: kinds.timeout,
      tls: kinds.tls,
      other: kinds.other + kinds.retryable,
      errors,
      p99Ms: report.latency.p99,
      ...close,
    };
    results.push(result);
    const line =
      `  ${name.padEnd(8)} cycle ${String(cycle).padStart(3)}  resets ${String(result.resets).padStart(3)}` +
      `  refused ${String(result.refused).padStart(3)}  other ${String(result.closed + result.timeout + result.tls + result.other).padStart(3)}` +
      `  ok ${String(result.ok).padStart(4)}  queued at close ${String(result.queuedAtClose).padStart(3)}` +
      `  close ${result.closeMs.toFixed(1).padStart(6)} ms  re-listen ${result.relistenMs.toFixed(1).padStart(5)} ms`;
    if (result.resets > 0 || cycle % 10 === 0 || cycle === 1) console.log(line);
    await onCheckpoint?.(cycle);
  }
  return results;
}

function totals(results) {
  const sum = (key) => results.reduce((total, result) => total + result[key], 0);
  const errors = {};
  for (const result of results) {
    for (const [code, n] of Object.entries(result.errors)) errors[code] = (errors[code] ?? 0) + n;
  }
  const resets = results.map((result) => result.resets);
  return {
    closes: results.length,
    resets: sum('resets'),
    resetsPerClose: {
      mean: round2(sum('resets') / Math.max(1, results.length)),
      min: Math.min(...resets),
      max: Math.max(...resets),
    },
    closesWithResets: resets.filter((n) => n > 0).length,
    refused: sum('refused'),
    closed: sum('closed'),
    timeout: sum('timeout'),
    tls: sum('tls'),
    other: sum('other'),
    served: sum('ok'),
    requests: sum('requests'),
    errors,
    queuedAtCloseMean: round1(sum('queuedAtClose') / Math.max(1, results.length)),
    closeMsMedian: round1(median(results.map((result) => result.closeMs))),
    closeMsMax: round1(Math.max(...results.map((result) => result.closeMs))),
    relistenMsMedian: round1(median(results.map((result) => result.relistenMs))),
  };
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string', default: '100' },
      'node-cycles': { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '48' },
      duration: { type: 'string', default: '1000' },
      'burn-ms': { type: 'string', default: '1' },
      'max-seconds': { type: 'string', default: '300' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'soak.json') },
    },
  });
  if (!fs.existsSync(distEntry)) throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" first`);
  const options = {
    cycles: Number(values.cycles),
    nodeCycles: Number(values['node-cycles']),
    concurrency: Number(values.concurrency),
    duration: Number(values.duration),
    burnMs: Number(values['burn-ms']),
    maxSeconds: Number(values['max-seconds']),
  };
  if (globalThis.gc === undefined) console.log('(no --expose-gc: fd and RSS figures are read without a forced GC)');
  const started = performance.now();
  const deadline = started + options.maxSeconds * 1000;
  const { key, cert } = certificate();
  console.log(
    `soak bench — Node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}; ` +
      `${options.cycles} listener.close() + re-listen cycles (and ${options.nodeCycles} server.close() ones), ` +
      `${options.concurrency} clients on fresh TLS connections, ${options.duration} ms of load per cycle, ` +
      `close at its middle, ${options.burnMs} ms CPU handler`,
  );
  const clients = fork(fileURLToPath(import.meta.url), ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const listener = await listenerVariant({ key, cert }, options.burnMs);
    // One warm-up cycle, not counted: TLS, JIT and the load kit's first allocations.
    await soak('warm-up', listener, clients, options, 1, Infinity);
    const memory = [await snapshot(0)];
    const listenerResults = await soak('listener', listener, clients, options, options.cycles, deadline, async (cycle) => {
      if (cycle === CHECKPOINT_CYCLE) memory.push(await snapshot(cycle));
    });
    const last = listenerResults.length;
    if (last !== CHECKPOINT_CYCLE) memory.push(await snapshot(last));
    await listener.closeAndRelisten(false);

    const node = await nodeVariant({ key, cert }, options.burnMs);
    await soak('warm-up', node, clients, options, 1, Infinity);
    // Node's path is measured whatever time is left: it is the ratio's denominator.
    const nodeResults = await soak('node', node, clients, options, options.nodeCycles, Infinity);
    await node.closeAndRelisten(false);

    const [start, atCheckpoint = start, end = atCheckpoint] = memory;
    const growthCycles = end.cycle - atCheckpoint.cycle;
    const growth = {
      fdsPerCycle: growthCycles > 0 ? round2((end.fds - atCheckpoint.fds) / growthCycles) : null,
      rssKiBPerCycle: growthCycles > 0 ? round1(((end.rssMiB - atCheckpoint.rssMiB) * 1024) / growthCycles) : null,
      fdsOverall: end.fds - start.fds,
      rssMiBOverall: round1(end.rssMiB - start.rssMiB),
      fromCycle: atCheckpoint.cycle,
      toCycle: end.cycle,
    };
    const summary = { listener: totals(listenerResults), node: totals(nodeResults) };
    const seconds = (performance.now() - started) / 1000;

    console.log('');
    console.log('| variant          | closes | resets/close (total, closes with any) | refused | other errors | served | queued at close | close (median, max)  |');
    console.log('|------------------|--------|---------------------------------------|---------|--------------|--------|-----------------|----------------------|');
    for (const [variant, label] of [['listener', 'listener.close()'], ['node', 'server.close()']]) {
      const s = summary[variant];
      const other = s.closed + s.timeout + s.tls + s.other;
      console.log(
        `| ${label.padEnd(16)} | ${String(s.closes).padEnd(6)} | ${`${s.resetsPerClose.mean} (${s.resets}, ${s.closesWithResets})`.padEnd(37)} | ` +
          `${String(s.refused).padEnd(7)} | ${String(other).padEnd(12)} | ${String(s.served).padEnd(6)} | ${String(s.queuedAtCloseMean).padEnd(15)} | ` +
          `${`${s.closeMsMedian} ms, ${s.closeMsMax} ms`.padEnd(20)} |`,
      );
    }
    console.log(
      `server process: fds ${memory.map((m) => `${m.fds} (cycle ${m.cycle})`).join(' → ')}; ` +
        `RSS ${memory.map((m) => `${m.rssMiB} MiB (cycle ${m.cycle})`).join(' → ')}`,
    );
    console.log(
      `growth per cycle from cycle ${growth.fromCycle} to ${growth.toCycle}: ${growth.fdsPerCycle} fds, ${growth.rssKiBPerCycle} KiB RSS; ` +
        `${seconds.toFixed(0)} s in all`,
    );

    writeResult(values.out, {
      ...machine('soak'),
      config: { ...options, clients: 'runUnderLoad, connection: new (a fresh TLS connection per request), in a child process' },
      seconds: round1(seconds),
      summary,
      memory,
      growth,
      cycles: { listener: listenerResults, node: nodeResults },
    });
  } finally {
    clients.disconnect();
  }
}

function round1(value) {
  return Math.round(value * 10) / 10;
}

function round2(value) {
  return Math.round(value * 100) / 100;
}
