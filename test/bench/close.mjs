// Resets per close under load, listener.close() against server.close(), and
// close latency on an idle listener. Not a test: it prints a table and writes
// bench-results/close.json. Uses dist/ (build it first: npx tsc -p tsconfig.json).
//
//   node test/bench/close.mjs [--rounds 10] [--concurrency 64] [--responses 300]
//                             [--burn-ms 1] [--idle 300] [--out file.json]
//
// Under load: an https server in a child process (fresh port each round)
// answers every request after burning --burn-ms of CPU. This process runs
// --concurrency clients, each opening a fresh TLS connection per request
// (agent: false). After --responses responses the server is told to close:
//   listener  listen(server) + listener.close()
//   node      server.listen() + server.close()
// A client stops once it was refused, or once the server reported the close
// done. ECONNRESET / EPIPE / "socket hang up" are resets; ECONNREFUSED after
// the shutdown is the expected refusal. The variants alternate round by round.
//
// Idle: --idle closes of a listener nobody connects to, timed from the call to
// the promise (listener) or the callback (node), in this process.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, certificate } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const distEntry = path.join(packageRoot, 'dist', 'index.mjs');

if (process.argv[2] === '--server') await runServer();
else await runBench();

function burn(ms) {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

// The server side of one round, in its own process.
async function runServer() {
  const { listen, ListenSocket } = await import(distEntry);
  const { variant, key, cert, burnMs } = await new Promise((resolve) => process.once('message', resolve));
  process.on('disconnect', () => process.exit(0));
  const server = https.createServer({ key, cert }, (_request, response) => {
    burn(burnMs);
    response.end('ok\n');
  });
  let listener;
  let probe;
  if (variant === 'listener') {
    listener = await listen(server, { host: '127.0.0.1' });
  } else {
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    // A dup of Node's fd, only to read the queue depth at the close.
    probe = ListenSocket.adopt(server);
  }
  process.send({ port: server.address().port });
  await new Promise((resolve) => process.once('message', resolve));
  const start = performance.now();
  if (listener !== undefined) {
    const report = await listener.close({ timeout: 10_000 });
    process.send({
      queuedAtClose: report.queuedAtClose,
      handshakingAtClose: report.handshakingAtClose,
      openAtClose: report.openAtClose,
      acceptedWhileDraining: report.accepted,
      ended: report.ended,
      destroyed: report.destroyed,
      closeMs: performance.now() - start,
    });
  } else {
    const queuedAtClose = probe.pending().queued;
    // Closed first, or the dup would keep the socket listening.
    probe.close();
    await new Promise((resolve) => server.close(resolve));
    process.send({ queuedAtClose, closeMs: performance.now() - start });
  }
}

function outcomeOf(error) {
  if (error.code === 'ECONNRESET' || error.message === 'socket hang up') return 'ECONNRESET';
  return error.code ?? error.message;
}

/** One GET on a fresh TLS connection: 'ok' or what went wrong. */
function request(port) {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', agent: false, rejectUnauthorized: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode === 200 ? 'ok' : `HTTP ${response.statusCode}`));
      response.on('error', (error) => resolve(outcomeOf(error)));
    });
    req.on('error', (error) => resolve(outcomeOf(error)));
  });
}

async function loadRound(variant, options, tls) {
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const died = new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`server exited with ${code}`))));
  died.catch(() => {});
  const next = () => Promise.race([new Promise((resolve) => child.once('message', resolve)), died]);
  child.send({ variant, ...tls, burnMs: options.burnMs });
  const { port } = await next();

  const outcomes = {};
  let responses = 0;
  let closeDone = false;
  let closing;
  const requestClose = () => {
    if (closing !== undefined) return;
    closing = next().then((result) => {
      closeDone = true;
      return result;
    });
    child.send('close');
  };
  const client = async () => {
    // A hang bound far above what a round needs.
    for (let i = 0; i < 10_000 && !closeDone; i++) {
      const outcome = await request(port);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (outcome === 'ok' && ++responses === options.responses) requestClose();
      if (outcome === 'ECONNREFUSED') break;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  if (closing === undefined) requestClose();
  const closeResult = await closing;
  const exited = child.exitCode !== null || child.signalCode !== null;
  child.disconnect();
  if (!exited) await new Promise((resolve) => child.once('exit', resolve));
  const { ok = 0, ECONNRESET = 0, EPIPE = 0, ECONNREFUSED = 0, ...other } = outcomes;
  return { ok, ECONNRESET, EPIPE, ECONNREFUSED, other, ...closeResult };
}

async function idleCloses(count) {
  const { listen } = await import(distEntry);
  const times = { listener: [], node: [], sockDiag: [] };
  for (let i = 0; i < count; i++) {
    for (const variant of i % 2 ? ['node', 'listener'] : ['listener', 'node']) {
      const server = net.createServer();
      if (variant === 'listener') {
        const listener = await listen(server, { host: '127.0.0.1' });
        // close() counts handshakes in SYN_RECV once (sock_diag): its share.
        let start = performance.now();
        listener.pending({ handshakes: true });
        times.sockDiag.push((performance.now() - start) * 1000);
        start = performance.now();
        await listener.close();
        times.listener.push((performance.now() - start) * 1000);
      } else {
        await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
        const start = performance.now();
        await new Promise((resolve) => server.close(resolve));
        times.node.push((performance.now() - start) * 1000);
      }
    }
  }
  const stats = (values) => ({
    n: values.length,
    medianUs: round1(quantile(values, 0.5)),
    p90Us: round1(quantile(values, 0.9)),
    maxUs: round1(Math.max(...values)),
  });
  return {
    listener: stats(times.listener),
    node: stats(times.node),
    sockDiag: stats(times.sockDiag),
    tcpSocketsInNamespace: tcpSocketCount(),
  };
}

/** TCP sockets of this network namespace (what a sock_diag dump walks), TIME_WAIT included. */
function tcpSocketCount() {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      count += fs.readFileSync(file, 'utf8').trim().split('\n').length - 1;
    } catch {
      // No IPv6.
    }
  }
  return count;
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '64' },
      responses: { type: 'string', default: '300' },
      'burn-ms': { type: 'string', default: '1' },
      idle: { type: 'string', default: '300' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'close.json') },
    },
  });
  if (!fs.existsSync(distEntry)) throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" first`);
  const options = {
    rounds: Number(values.rounds),
    concurrency: Number(values.concurrency),
    responses: Number(values.responses),
    burnMs: Number(values['burn-ms']),
  };
  const tls = certificate();
  const variants = ['listener', 'node'];
  const label = { listener: 'listener.close()', node: 'server.close()' };
  console.log(
    `close bench — Node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}; ` +
      `${options.rounds} rounds each, ${options.concurrency} clients on fresh TLS connections, ` +
      `${options.burnMs} ms CPU handler, close after ${options.responses} responses`,
  );
  // One warm-up round each, not counted.
  for (const variant of variants) await loadRound(variant, { ...options, responses: 100 }, tls);

  const rounds = [];
  for (let r = 0; r < options.rounds; r++) {
    for (const variant of r % 2 ? [...variants].reverse() : variants) {
      const result = await loadRound(variant, options, tls);
      rounds.push({ round: r + 1, variant, ...result });
      const other = Object.entries(result.other).map(([k, n]) => `${k}=${n}`).join(' ');
      console.log(
        `  round ${String(r + 1).padStart(2)}  ${label[variant].padEnd(16)}  ECONNRESET ${String(result.ECONNRESET).padStart(3)}` +
          `  EPIPE ${result.EPIPE}  refused ${String(result.ECONNREFUSED).padStart(3)}  ok ${String(result.ok).padStart(4)}` +
          `  queued at close ${String(result.queuedAtClose).padStart(3)}  close ${result.closeMs.toFixed(1).padStart(7)} ms` +
          (other ? `  other: ${other}` : ''),
      );
    }
  }

  const summary = {};
  for (const variant of variants) {
    const mine = rounds.filter((round) => round.variant === variant);
    const resets = mine.map((round) => round.ECONNRESET + round.EPIPE);
    summary[variant] = {
      resetsPerClose: { mean: round1(mean(resets)), min: Math.min(...resets), max: Math.max(...resets), total: sum(resets) },
      refusedPerClose: round1(mean(mine.map((round) => round.ECONNREFUSED))),
      okPerRound: round1(mean(mine.map((round) => round.ok))),
      queuedAtClose: round1(mean(mine.map((round) => round.queuedAtClose))),
      closeMsMedian: round1(quantile(mine.map((round) => round.closeMs), 0.5)),
    };
  }
  console.log(`idle close latency (${values.idle} closes each, alternating)…`);
  const idle = await idleCloses(Number(values.idle));

  console.log('');
  console.log('| variant          | resets/close mean (min–max) | total | refused/close | queued at close | close under load (median) | idle close median (p90) |');
  console.log('|------------------|-----------------------------|-------|---------------|-----------------|---------------------------|-------------------------|');
  for (const variant of variants) {
    const s = summary[variant];
    console.log(
      `| ${label[variant].padEnd(16)} | ${`${s.resetsPerClose.mean} (${s.resetsPerClose.min}–${s.resetsPerClose.max})`.padEnd(27)} | ` +
        `${String(s.resetsPerClose.total).padEnd(5)} | ${String(s.refusedPerClose).padEnd(13)} | ${String(s.queuedAtClose).padEnd(15)} | ` +
        `${`${s.closeMsMedian} ms`.padEnd(25)} | ${`${idle[variant].medianUs} µs (${idle[variant].p90Us} µs)`.padEnd(23)} |`,
    );
  }
  console.log(
    `idle listener.close() includes one sock_diag dump (handshakes in SYN_RECV): median ${idle.sockDiag.medianUs} µs ` +
      `(p90 ${idle.sockDiag.p90Us} µs) with ${idle.tcpSocketsInNamespace} TCP sockets in the namespace`,
  );

  const report = {
    ...machine('close'),
    config: { ...options, idleCloses: Number(values.idle), clients: 'https.get, agent: false (a fresh TLS connection per request)' },
    summary,
    idle,
    rounds,
  };
  writeResult(values.out, report);
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function mean(values) {
  return sum(values) / values.length;
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function round1(value) {
  return Math.round(value * 10) / 10;
}
