// pending() cost per call, and RSS / open fds before and after many
// accept/release cycles. Not a test: prints figures and writes
// bench-results/resources.json.
//
//   node test/bench/resources.mjs [--cycles 100000] [--calls 200000] [--sockets 10000] [--out file.json]
//
// pending() is one getsockopt(TCP_INFO); it is compared with server.address()
// on a Node server in the same run (one getsockname through Node's TCP wrap),
// the closest thing Node has. pending({ handshakes: true }) adds a sock_diag
// dump, reported separately because it walks every socket of the namespace:
// it is timed again with --sockets extra TCP sockets open (loopback pairs,
// 10k by default) and reported per 10k sockets of the namespace (counted in
// /proc/net/tcp and tcp6). stats() (the counters and one TCP_INFO
// getsockopt) is timed beside pending(); the budget for both is 2 µs a call.
//
// Cycles: a forked client keeps 32 connects in flight against a net.Server fed
// by listen(); each accepted connection is destroyed by the server at once.
// RSS and /proc/self/fd are read after a warm-up and again at the end, both
// after a forced GC when --expose-gc is available.
//
// Diagnostics channels: no lifecycle event is published per connection, so the
// accept path runs no channel code. One event (a pause()+resume() pair
// publishes two) is timed with no subscriber and with one, and set against
// the server's CPU time per accept/release cycle.
import diagnostics from 'node:diagnostics_channel';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openFds, settle } from './common.mjs';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');

if (process.argv[2] === '--client') runClient();
else await main();

function runClient() {
  process.on('disconnect', () => process.exit(0));
  process.on('message', ({ port, count }) => {
    let started = 0;
    let done = 0;
    let errors = 0;
    const next = () => {
      if (started >= count) return;
      started++;
      const socket = net.connect({ port, host: '127.0.0.1' });
      const finish = () => {
        done++;
        if (done === count) process.send({ done, errors });
        else next();
      };
      socket.on('error', () => {
        errors++;
      });
      socket.on('close', finish);
      socket.resume();
    };
    for (let i = 0; i < 32; i++) next();
  });
}


function perCallNs(fn, calls) {
  for (let i = 0; i < 1000; i++) fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn();
  return Number(process.hrtime.bigint() - start) / calls;
}

// TCP sockets of this network namespace, as sock_diag walks them.
function tcpSockets() {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      count += fs.readFileSync(file, 'utf8').trim().split('\n').length - 1;
    } catch {}
  }
  return count;
}

// `pairs` loopback connections held open (2 sockets each, plus a listener).
async function openPairs(pairs) {
  const accepted = [];
  const server = net.createServer((socket) => accepted.push(socket));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
  const { port } = server.address();
  const clients = [];
  for (let i = 0; i < pairs; i += 256) {
    const wave = [];
    for (let j = i; j < Math.min(pairs, i + 256); j++) {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.on('error', () => {});
      clients.push(socket);
      wave.push(new Promise((resolve) => socket.once('connect', resolve).once('error', resolve)));
    }
    await Promise.all(wave);
  }
  while (accepted.length < clients.length) await new Promise((resolve) => setTimeout(resolve, 10));
  return {
    async close() {
      for (const socket of clients) socket.destroy();
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function runCycles(listen, count) {
  const server = net.createServer((socket) => socket.destroy());
  const listener = await listen(server, { host: '127.0.0.1', backlog: 1024 });
  const client = fork(fileURLToPath(import.meta.url), ['--client']);
  const run = (n) =>
    new Promise((resolve) => {
      client.once('message', resolve);
      client.send({ port: listener.address().port, count: n });
    });
  await run(Math.min(5000, count));
  await settle();
  const before = { rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, fds: openFds(), count: listener.count };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const result = await run(count);
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = (performance.now() - started) / 1000;
  await settle();
  const after = { rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, fds: openFds(), count: listener.count };
  client.disconnect();
  await listener.close();
  const cpuNsPerCycle = ((cpu.user + cpu.system) * 1000) / result.done;
  return { cycles: result.done, clientErrors: result.errors, seconds, cpuNsPerCycle, before, after };
}

async function main() {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string', default: '100000' },
      calls: { type: 'string', default: '200000' },
      sockets: { type: 'string', default: '10000' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'resources.json') },
    },
  });
  const { listen } = await import(path.join(packageRoot, 'dist', 'index.js'));
  const calls = Number(values.calls);

  const nodeServer = net.createServer();
  await new Promise((resolve) => nodeServer.listen(0, '127.0.0.1', resolve));
  const ours = await listen(net.createServer(), { host: '127.0.0.1' });
  const pendingNs = perCallNs(() => ours.pending(), calls);
  const addressNs = perCallNs(() => nodeServer.address(), calls);
  const statsNs = perCallNs(() => ours.stats(), calls);
  const handshakesNs = perCallNs(() => ours.pending({ handshakes: true }), Math.max(1, calls / 100));
  const namespaceSockets = tcpSockets();
  const crowd = await openPairs(Math.floor(Number(values.sockets) / 2));
  const crowdedSockets = tcpSockets();
  const crowdedHandshakesNs = perCallNs(() => ours.pending({ handshakes: true }), 200);
  await crowd.close();
  const handshakesNsPer10k = (crowdedHandshakesNs * 10_000) / Math.max(1, crowdedSockets);
  await ours.close();
  await new Promise((resolve) => nodeServer.close(resolve));

  const budget = (ns) => (ns <= 2000 ? 'within the 2 µs budget' : 'OVER the 2 µs budget');
  console.log(`pending() ${pendingNs.toFixed(0)} ns/call (${budget(pendingNs)}), server.address() ${addressNs.toFixed(0)} ns/call`);
  console.log(`stats() ${statsNs.toFixed(0)} ns/call (${budget(statsNs)})`);
  console.log(
    `pending({ handshakes: true }) (opt-in, sock_diag) ${(handshakesNs / 1000).toFixed(1)} µs/call with ${namespaceSockets} TCP sockets in the namespace, ` +
      `${(crowdedHandshakesNs / 1000).toFixed(1)} µs/call with ${crowdedSockets}: ${(handshakesNsPer10k / 1000).toFixed(1)} µs per 10k sockets`,
  );

  const paused = await listen(net.createServer(), { host: '127.0.0.1' });
  const pauseResume = () => (paused.pause(), paused.resume());
  const unsubscribedNs = perCallNs(pauseResume, calls) / 2;
  const subscriber = () => {};
  for (const name of ['pause', 'resume']) diagnostics.subscribe(`graceful-listener:${name}`, subscriber);
  const subscribedNs = perCallNs(pauseResume, calls) / 2;
  for (const name of ['pause', 'resume']) diagnostics.unsubscribe(`graceful-listener:${name}`, subscriber);
  await paused.close();

  const cycles = await runCycles(listen, Number(values.cycles));
  const publishNs = Math.max(0, subscribedNs - unsubscribedNs);
  console.log(
    `diagnostics channels: 0 events per accept; one pause/resume ${unsubscribedNs.toFixed(0)} ns unsubscribed, ` +
      `${subscribedNs.toFixed(0)} ns with one subscriber (publish ${publishNs.toFixed(0)} ns = ` +
      `${((100 * publishNs) / cycles.cpuNsPerCycle).toFixed(2)} % of one accept/release cycle, ${(cycles.cpuNsPerCycle / 1000).toFixed(1)} µs CPU)`,
  );
  const rssGrowthMiB = (cycles.after.rss - cycles.before.rss) / 2 ** 20;
  console.log(
    `${cycles.cycles} accept/release cycles in ${cycles.seconds.toFixed(1)} s: ` +
      `fds ${cycles.before.fds} -> ${cycles.after.fds}, ` +
      `RSS ${(cycles.before.rss / 2 ** 20).toFixed(1)} -> ${(cycles.after.rss / 2 ** 20).toFixed(1)} MiB ` +
      `(${rssGrowthMiB >= 0 ? "+" : ""}${rssGrowthMiB.toFixed(1)}), heap ${(cycles.before.heapUsed / 2 ** 20).toFixed(1)} -> ${(cycles.after.heapUsed / 2 ** 20).toFixed(1)} MiB, count ${cycles.before.count} -> ${cycles.after.count}`,
  );

  const result = {
    node: process.version,
    pending: {
      nsPerCall: pendingNs,
      serverAddressNsPerCall: addressNs,
      ratioToServerAddress: pendingNs / addressNs,
      handshakesNsPerCall: handshakesNs,
      namespaceSockets,
    },
    stats: { nsPerCall: statsNs },
    handshakes: {
      optIn: 'pending({ handshakes: true })',
      sockets: crowdedSockets,
      nsPerCall: crowdedHandshakesNs,
      nsPer10kSockets: handshakesNsPer10k,
    },
    cycles: { ...cycles, rssGrowthMiB, fdGrowth: cycles.after.fds - cycles.before.fds },
    channels: {
      eventsPerAccept: 0,
      unsubscribedNsPerEvent: unsubscribedNs,
      subscribedNsPerEvent: subscribedNs,
      publishRatioToAccept: publishNs / cycles.cpuNsPerCycle,
    },
  };
  fs.mkdirSync(path.dirname(values.out), { recursive: true });
  fs.writeFileSync(values.out, JSON.stringify(result, null, 2));
  console.log(`wrote ${values.out}`);
}
