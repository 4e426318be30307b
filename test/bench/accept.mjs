// Accept rate: ListenSocket's batched accept4 against Node's own net.Server,
// on the same load, in one run. Not a test: it prints figures and writes
// bench-results/accept.json.
//
//   npm run bench                  (compiles dist/ first, then runs this file)
//   node test/bench/accept.mjs [--rounds 3] [--out file.json]
//
// Variants, alternating within every round (the first one rotates):
//   node     net.createServer(socket => socket.destroy())
//   raw      ListenSocket.arm(fds => fds.forEach(fd => fs.closeSync(fd)))  — the raw batched accept
//   wrapped  ListenSocket.arm(fds => fds.forEach(fd => new net.Socket({ fd }).destroy()))
//
// Load: a forked Node process on loopback that keeps 64 connects in flight and
// closes each connection as soon as it is established (plain TCP
// connect/close, no payload). Every measurement gets a fresh listener on a
// fresh port. Two measurements:
//   drain      the server does not accept while the client fills the accept
//              queue with 4000 connections (ListenSocket: disarmed; net.Server:
//              event loop held), then the time to accept them all is taken.
//              Server-bound: this is the accept rate.
//   sustained  the server accepts while the client connects for a fixed time.
//              On 2 cores the client is usually the bottleneck, so the
//              server's CPU time per accepted connection is the figure to read.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, median } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const CONCURRENCY = 64;
const BACKLOG = 4096;
const BURST = 4000;

if (process.argv[2] === '--client') runClient();
else await runBench();

// Load generator: answers each request with { connects, errors }.
function runClient() {
  process.on('disconnect', () => process.exit(0));
  process.on('message', ({ port, ms, count }) => {
    const deadline = ms === undefined ? Infinity : performance.now() + ms;
    let started = 0;
    let connects = 0;
    let inFlight = 0;
    const errors = {};
    const next = () => {
      if (performance.now() >= deadline || started >= (count ?? Infinity)) {
        if (inFlight === 0) process.send({ connects, errors });
        return;
      }
      started++;
      inFlight++;
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.on('connect', () => {
        connects++;
        socket.destroy();
      });
      socket.on('error', (error) => {
        errors[error.code] = (errors[error.code] ?? 0) + 1;
      });
      socket.on('close', () => {
        inFlight--;
        next();
      });
    };
    for (let i = 0; i < CONCURRENCY; i++) next();
  });
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      bursts: { type: 'string', default: '4' },
      'sustained-ms': { type: 'string', default: '1000' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'accept.json') },
    },
  });
  const rounds = Number(values.rounds);
  const bursts = Number(values.bursts);
  const sustainedMs = Number(values['sustained-ms']);
  const { ListenSocket } = await import(path.join(packageRoot, 'dist', 'index.mjs'));

  const client = fork(fileURLToPath(import.meta.url), ['--client'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const clientDied = new Promise((_, reject) =>
    client.once('exit', (code) => reject(new Error(`load generator exited with ${code}`))),
  );
  clientDied.catch(() => {});
  const load = (request) => {
    const answer = new Promise((resolve) => client.once('message', resolve));
    client.send(request);
    return Promise.race([answer, clientDied]);
  };

  // Each variant opens a listener that does not accept yet; start() begins
  // accepting, onAccept(n) is told of every n connections accepted.
  const variants = {
    async node(onAccept) {
      const server = net.createServer((socket) => {
        socket.destroy();
        onAccept(1);
      });
      await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: BACKLOG }, resolve));
      // A dup of the same socket, only to read its queue depth.
      const probe = ListenSocket.adopt(server);
      return {
        port: server.address().port,
        queued: () => probe.pending().queued,
        // net.Server accepts whenever the event loop runs.
        start() {},
        async close() {
          probe.close();
          await new Promise((resolve) => server.close(resolve));
        },
      };
    },
    async raw(onAccept) {
      return openListenSocket((fds) => {
        for (const fd of fds) fs.closeSync(fd);
        onAccept(fds.length);
      });
    },
    async wrapped(onAccept) {
      return openListenSocket((fds) => {
        for (const fd of fds) new net.Socket({ fd }).destroy();
        onAccept(fds.length);
      });
    },
  };
  async function openListenSocket(onBatch) {
    const listener = await ListenSocket.open({ host: '127.0.0.1', port: 0, backlog: BACKLOG });
    return {
      port: listener.address().port,
      queued: () => listener.pending().queued,
      start: () => listener.arm(onBatch),
      close: async () => listener.close(),
    };
  }
  const names = Object.keys(variants);

  function counter() {
    const state = { accepted: 0, batches: 0, last: 0, target: Infinity, done: undefined };
    state.reached = new Promise((resolve) => (state.done = resolve));
    state.onAccept = (n) => {
      state.accepted += n;
      state.batches++;
      state.last = performance.now();
      if (state.accepted >= state.target) state.done();
    };
    return state;
  }

  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  async function drain(name) {
    const count = counter();
    const server = await variants[name](count.onAccept);
    const connected = load({ port: server.port, count: BURST });
    // Hold the event loop (net.Server cannot stop accepting otherwise) until
    // the client has filled the queue.
    const deadline = performance.now() + 10_000;
    while (server.queued() < BURST) {
      if (performance.now() > deadline) throw new Error(`${name}: queue reached only ${server.queued()} of ${BURST}`);
      Atomics.wait(sleeper, 0, 0, 1);
    }
    count.target = BURST;
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    server.start();
    await count.reached;
    const seconds = (count.last - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const result = await connected;
    await server.close();
    return {
      accepted: count.accepted,
      acceptsPerSecond: Math.round(count.accepted / seconds),
      serverCpuUsPerAccept: round3((cpu.user + cpu.system) / count.accepted),
      meanBatch: round3(count.accepted / count.batches),
      clientErrors: result.errors,
    };
  }

  async function sustained(name, ms) {
    const count = counter();
    const server = await variants[name](count.onAccept);
    server.start();
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    const result = await load({ port: server.port, ms });
    count.target = result.connects;
    if (count.accepted < count.target) {
      await Promise.race([count.reached, new Promise((resolve) => setTimeout(resolve, 1000))]);
    }
    const cpu = process.cpuUsage(cpuBefore);
    const seconds = ((count.last || performance.now()) - start) / 1000;
    await server.close();
    return {
      accepted: count.accepted,
      acceptsPerSecond: Math.round(count.accepted / seconds),
      serverCpuUsPerAccept: round3((cpu.user + cpu.system) / count.accepted),
      meanBatch: round3(count.accepted / count.batches),
      clientErrors: result.errors,
    };
  }

  console.log(
    `accept bench — Node ${process.version}, ${os.cpus().length} cores, ${rounds} rounds, ` +
      `drain: ${bursts} x ${BURST} queued connections, sustained: ${sustainedMs} ms, ${CONCURRENCY} connects in flight`,
  );
  for (const name of names) {
    await drain(name);
    await sustained(name, 300);
  }

  const results = [];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(r + i) % names.length];
      const drains = [];
      for (let b = 0; b < bursts; b++) drains.push(await drain(name));
      const drainResult = {
        mode: 'drain',
        ...drains.reduce((best, next) => (next.acceptsPerSecond > best.acceptsPerSecond ? next : best)),
        acceptsPerSecondAll: drains.map((d) => d.acceptsPerSecond),
      };
      const sustainedResult = { mode: 'sustained', ...(await sustained(name, sustainedMs)) };
      for (const result of [drainResult, sustainedResult]) {
        results.push({ round: r + 1, variant: name, ...result });
        const errors = Object.entries(result.clientErrors).map(([code, n]) => `${code}=${n}`).join(' ');
        console.log(
          `  round ${r + 1}  ${name.padEnd(8)} ${result.mode.padEnd(9)} ${String(result.acceptsPerSecond).padStart(7)} accepts/s` +
            `  ${result.serverCpuUsPerAccept.toFixed(2).padStart(6)} µs CPU/accept  mean batch ${result.meanBatch.toFixed(1).padStart(5)}` +
            (errors ? `  client errors: ${errors}` : ''),
        );
      }
    }
  }
  client.disconnect();

  const summary = {};
  for (const mode of ['drain', 'sustained']) {
    summary[mode] = {};
    for (const name of names) {
      const mine = results.filter((result) => result.mode === mode && result.variant === name);
      summary[mode][name] = {
        acceptsPerSecond: median(mine.map((result) => result.acceptsPerSecond)),
        serverCpuUsPerAccept: median(mine.map((result) => result.serverCpuUsPerAccept)),
      };
    }
  }
  const ratio = (mode, name) => ({
    acceptRate: round3(summary[mode][name].acceptsPerSecond / summary[mode].node.acceptsPerSecond),
    cpuPerAccept: round3(summary[mode][name].serverCpuUsPerAccept / summary[mode].node.serverCpuUsPerAccept),
  });
  const ratios = {
    drain: { raw: ratio('drain', 'raw'), wrapped: ratio('drain', 'wrapped') },
    sustained: { raw: ratio('sustained', 'raw'), wrapped: ratio('sustained', 'wrapped') },
  };

  console.log('medians (accept rate; server CPU per accepted connection):');
  for (const mode of ['drain', 'sustained']) {
    for (const name of names) {
      const s = summary[mode][name];
      console.log(
        `  ${mode.padEnd(9)} ${name.padEnd(8)} ${String(s.acceptsPerSecond).padStart(7)} accepts/s  ${s.serverCpuUsPerAccept.toFixed(2).padStart(6)} µs`,
      );
    }
  }
  console.log(
    `raw / node:     drain ${ratios.drain.raw.acceptRate.toFixed(2)}x the accept rate; ` +
      `CPU per accept ${ratios.drain.raw.cpuPerAccept.toFixed(2)}x (drain), ${ratios.sustained.raw.cpuPerAccept.toFixed(2)}x (sustained)`,
  );
  console.log(
    `wrapped / node: drain ${ratios.drain.wrapped.acceptRate.toFixed(2)}x the accept rate; ` +
      `CPU per accept ${ratios.drain.wrapped.cpuPerAccept.toFixed(2)}x (drain), ${ratios.sustained.wrapped.cpuPerAccept.toFixed(2)}x (sustained)`,
  );

  const report = {
    ...machine('accept'),
    config: {
      rounds,
      bursts,
      burst: BURST,
      sustainedMs,
      concurrency: CONCURRENCY,
      backlog: BACKLOG,
      close: { node: 'socket.destroy()', raw: 'fs.closeSync(fd)', wrapped: 'new net.Socket({ fd }).destroy()' },
    },
    summary,
    ratios,
    results,
  };
  writeResult(values.out, report);
}

function round3(value) {
  return Math.round(value * 1000) / 1000;
}
