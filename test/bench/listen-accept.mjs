// Accept-path cost of an http, an https and an HTTP/2 (TLS) server fed by
// server.listen() against the same server fed by listen(server), a new
// connection per request. Not a test: it prints figures and writes
// bench-results/listen-accept.json.
//
//   npx tsc -p tsconfig.json && node test/bench/listen-accept.mjs
//   node test/bench/listen-accept.mjs [--rounds 7] [--round-ms 3000] [--concurrency 32]
//                                     [--protocols http,https,h2] [--goal 1.10] [--no-pin] [--out file.json]
//
// Each round runs, for each protocol, both modes back to back (the mode that
// goes first alternates round by round), each on a fresh server and port:
//   node      server.listen({ host: '127.0.0.1', port: 0 })
//   listener  await listen(server, { host: '127.0.0.1', port: 0 })
// The handler answers 'ok'. The load generator is a forked Node process on
// loopback running `concurrency` loops; each loop opens a new connection
// (agent: false, so no keep-alive and no TLS session reuse), sends one GET
// with Connection: close, reads the response and waits for the socket to
// close, then starts again, until the round's time is up. h2: each loop
// opens a new TLS connection and HTTP/2 session (http2.connect, ALPN h2),
// sends one GET, closes the session once the response is read and waits for
// it to close — one accepted connection per request, as for http and https,
// so the figure measures the accept path and not stream multiplexing.
//
// On 2 cores the client (which does its half of every TCP and TLS handshake)
// is usually the bottleneck, so two figures are reported per mode: requests
// per second, and the server process's CPU time per request — the second is
// the one that does not depend on the client keeping up. Ratios are
// listener / node: > 1 is better for the rate, < 1 is better for CPU.
// Efficiency is the inverse CPU ratio, node / listener per round (> 1: ours
// costs less per request); its median and spread (min–max over the rounds)
// are printed per protocol, with a line saying so when the median misses the
// goal (--goal, 1.10) or a round falls below 1.0.
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, median, certificate } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const HOST = '127.0.0.1';

if (process.argv[2] === '--client') runClient();
else await runBench();

// Load generator: for each { port, protocol, ms, concurrency } answers
// { requests, errors, statuses, cpuUs, elapsedMs }.
function runClient() {
  process.on('disconnect', () => process.exit(0));
  process.on('message', ({ port, protocol, ms, concurrency }) => {
    const client = protocol === 'https' ? https : http;
    const errors = {};
    let requests = 0;
    let nonOk = 0;
    let running = 0;
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    const deadline = start + ms;
    const finish = () => {
      const cpu = process.cpuUsage(cpuBefore);
      process.send({
        requests,
        nonOk,
        errors,
        cpuUs: cpu.user + cpu.system,
        elapsedMs: performance.now() - start,
      });
    };
    const countError = (error) => {
      errors[error.code ?? error.message] = (errors[error.code ?? error.message] ?? 0) + 1;
    };
    const loop = () => {
      if (performance.now() >= deadline) {
        if (--running === 0) finish();
        return;
      }
      let done = false;
      const next = () => {
        if (done) return;
        done = true;
        setImmediate(loop);
      };
      if (protocol === 'h2') {
        const session = http2.connect(`https://${HOST}:${port}`, { rejectUnauthorized: false });
        session.on('error', (error) => {
          countError(error);
          next();
        });
        session.on('close', next);
        const stream = session.request({ ':path': '/' });
        let status = 0;
        stream.on('response', (headers) => (status = headers[':status']));
        stream.on('error', countError);
        stream.resume();
        stream.on('end', () => {
          if (status === 200) requests++;
          else nonOk++;
          session.close();
        });
        return;
      }
      const req = client.get(
        { host: HOST, port, path: '/', agent: false, headers: { connection: 'close' }, rejectUnauthorized: false },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) requests++;
            else nonOk++;
          });
        },
      );
      req.on('error', (error) => {
        countError(error);
        next();
      });
      req.on('close', next);
    };
    for (let i = 0; i < concurrency; i++) {
      running++;
      loop();
    }
  });
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '7' },
      'round-ms': { type: 'string', default: '3000' },
      'warmup-ms': { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '32' },
      protocols: { type: 'string', default: 'http,https,h2' },
      goal: { type: 'string', default: '1.10' },
      pin: { type: 'boolean', default: true },
      'no-pin': { type: 'boolean', default: false },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'listen-accept.json') },
    },
  });
  const rounds = Number(values.rounds);
  const roundMs = Number(values['round-ms']);
  const warmupMs = Number(values['warmup-ms']);
  const concurrency = Number(values.concurrency);
  const protocols = values.protocols.split(',');
  const goal = Number(values.goal);
  if (values['no-pin']) values.pin = false;
  const distEntry = path.join(packageRoot, 'dist', 'index.mjs');
  if (!fs.existsSync(distEntry)) throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" first`);
  const { listen } = await import(distEntry);
  const tlsOptions = certificate();

  // Pinned (taskset, 2+ cores): the server on core 0, the load generator on
  // core 1, so that the two never compete for one core — the largest source
  // of spread between rounds.
  const pinned = values.pin && os.cpus().length >= 2 && hasTaskset();
  if (pinned) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const child = fork(fileURLToPath(import.meta.url), ['--client'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  if (pinned) execFileSync('taskset', ['-a', '-p', '-c', '1', String(child.pid)], { stdio: 'ignore' });
  const childDied = new Promise((_, reject) =>
    child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`))),
  );
  childDied.catch(() => {});
  const load = (request) => {
    const answer = new Promise((resolve) => child.once('message', resolve));
    child.send(request);
    return Promise.race([answer, childDied]);
  };

  const makeServer = (protocol) => {
    const handler = (_req, res) => res.end('ok');
    if (protocol === 'h2') return http2.createSecureServer(tlsOptions, handler);
    return protocol === 'https' ? https.createServer(tlsOptions, handler) : http.createServer(handler);
  };

  const modes = {
    async node(server) {
      await new Promise((resolve) => server.listen({ host: HOST, port: 0 }, resolve));
      return {
        port: server.address().port,
        close: () => new Promise((resolve) => server.close(resolve)),
      };
    },
    async listener(server) {
      const listener = await listen(server, { host: HOST, port: 0 });
      return {
        port: listener.address().port,
        close: () => listener.close({ timeout: 1000, forceTimeout: 1000 }),
      };
    },
  };
  const modeNames = Object.keys(modes);

  async function measure(protocol, mode, ms) {
    const server = makeServer(protocol);
    let served = 0;
    server.on('request', (_req, res) => res.once('finish', () => served++));
    const started = await modes[mode](server);
    const cpuBefore = process.cpuUsage();
    const t0 = performance.now();
    const result = await load({ port: started.port, protocol, ms, concurrency });
    const elapsedMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpuBefore);
    await started.close();
    return {
      requests: result.requests,
      served,
      requestsPerSecond: Math.round((result.requests * 1000) / result.elapsedMs),
      serverCpuUsPerRequest: round2((cpu.user + cpu.system) / Math.max(1, served)),
      serverCpuLoad: round2((cpu.user + cpu.system) / 1000 / elapsedMs),
      clientCpuLoad: round2(result.cpuUs / 1000 / result.elapsedMs),
      nonOk: result.nonOk,
      clientErrors: result.errors,
    };
  }

  console.log(
    `listen-accept bench — Node ${process.version}, ${os.cpus().length} cores, ${rounds} rounds x ${roundMs} ms ` +
      `per mode per protocol, ${concurrency} concurrent connection-per-request loops` +
      (pinned ? ', server pinned to core 0 and load generator to core 1' : ', not pinned'),
  );
  for (const protocol of protocols) {
    for (const mode of modeNames) await measure(protocol, mode, warmupMs);
  }

  const results = [];
  for (let r = 0; r < rounds; r++) {
    for (const protocol of protocols) {
      const order = r % 2 === 0 ? modeNames : [...modeNames].reverse();
      for (const mode of order) {
        const result = await measure(protocol, mode, roundMs);
        results.push({ round: r + 1, protocol, mode, ...result });
        const errors = Object.entries(result.clientErrors).map(([code, n]) => `${code}=${n}`).join(' ');
        console.log(
          `  round ${r + 1}  ${protocol.padEnd(5)} ${mode.padEnd(8)} ${String(result.requestsPerSecond).padStart(6)} req/s` +
            `  ${result.serverCpuUsPerRequest.toFixed(1).padStart(6)} µs server CPU/req` +
            `  load server ${result.serverCpuLoad.toFixed(2)} client ${result.clientCpuLoad.toFixed(2)}` +
            (result.nonOk ? `  non-200: ${result.nonOk}` : '') +
            (errors ? `  client errors: ${errors}` : ''),
        );
      }
    }
  }
  child.disconnect();

  const summary = {};
  const ratios = {};
  for (const protocol of protocols) {
    summary[protocol] = {};
    for (const mode of modeNames) {
      const mine = results.filter((result) => result.protocol === protocol && result.mode === mode);
      summary[protocol][mode] = {
        requestsPerSecond: median(mine.map((result) => result.requestsPerSecond)),
        serverCpuUsPerRequest: median(mine.map((result) => result.serverCpuUsPerRequest)),
        clientErrors: mine.reduce((sum, result) => sum + Object.values(result.clientErrors).reduce((a, b) => a + b, 0), 0),
      };
    }
    // Per round, the two modes ran back to back: the ratio of each pair, then the median.
    const pairs = [];
    for (let r = 1; r <= rounds; r++) {
      const [node, listener] = modeNames.map((mode) =>
        results.find((result) => result.round === r && result.protocol === protocol && result.mode === mode),
      );
      pairs.push({
        rate: listener.requestsPerSecond / node.requestsPerSecond,
        cpu: listener.serverCpuUsPerRequest / node.serverCpuUsPerRequest,
      });
    }
    const efficiencies = pairs.map((pair) => 1 / pair.cpu);
    ratios[protocol] = {
      requestRate: round3(median(pairs.map((pair) => pair.rate))),
      requestRatePerRound: pairs.map((pair) => round3(pair.rate)),
      serverCpuPerRequest: round3(median(pairs.map((pair) => pair.cpu))),
      serverCpuPerRequestPerRound: pairs.map((pair) => round3(pair.cpu)),
      efficiency: round3(median(efficiencies)),
      efficiencyMin: round3(Math.min(...efficiencies)),
      efficiencyMax: round3(Math.max(...efficiencies)),
      efficiencyPerRound: efficiencies.map(round3),
      goal,
      goalMet: median(efficiencies) >= goal && Math.min(...efficiencies) >= 1,
    };
  }

  console.log('medians:');
  for (const protocol of protocols) {
    for (const mode of modeNames) {
      const s = summary[protocol][mode];
      console.log(
        `  ${protocol.padEnd(5)} ${mode.padEnd(8)} ${String(s.requestsPerSecond).padStart(6)} req/s` +
          `  ${s.serverCpuUsPerRequest.toFixed(1).padStart(6)} µs server CPU/req  client errors ${s.clientErrors}`,
      );
    }
  }
  for (const protocol of protocols) {
    const ratio = ratios[protocol];
    console.log(
      `listener / node, ${protocol}: request rate ${ratio.requestRate.toFixed(3)}x ` +
        `(rounds ${ratio.requestRatePerRound.map((x) => x.toFixed(2)).join(' ')}), ` +
        `server CPU per request ${ratio.serverCpuPerRequest.toFixed(3)}x ` +
        `(rounds ${ratio.serverCpuPerRequestPerRound.map((x) => x.toFixed(2)).join(' ')})`,
    );
  }

  console.log(`efficiency (node CPU per request / listener's; goal >= ${goal.toFixed(2)}, never below 1.00 in a round):`);
  for (const protocol of protocols) {
    const ratio = ratios[protocol];
    console.log(
      `  ${protocol.padEnd(5)} median ${ratio.efficiency.toFixed(3)}  spread ${ratio.efficiencyMin.toFixed(3)}–${ratio.efficiencyMax.toFixed(3)}` +
        `  (rounds ${ratio.efficiencyPerRound.map((x) => x.toFixed(2)).join(' ')})`,
    );
  }
  for (const protocol of protocols) {
    const ratio = ratios[protocol];
    if (ratio.efficiency < goal) {
      console.log(`GOAL NOT MET: ${protocol} efficiency ${ratio.efficiency.toFixed(3)} < ${goal.toFixed(2)} (median of ${rounds} rounds)`);
    } else if (ratio.efficiencyMin < 1) {
      console.log(`GOAL NOT MET: ${protocol} efficiency fell to ${ratio.efficiencyMin.toFixed(3)} < 1.00 in a round (median ${ratio.efficiency.toFixed(3)})`);
    } else {
      console.log(`goal met: ${protocol} efficiency ${ratio.efficiency.toFixed(3)} >= ${goal.toFixed(2)}, every round >= 1.00`);
    }
  }

  const report = {
    ...machine('listen-accept'),
    config: {
      rounds,
      roundMs,
      warmupMs,
      concurrency,
      protocols,
      goal,
      pinned,
      request: 'GET / with Connection: close, agent: false; h2: one new TLS connection and session per request',
    },
    summary,
    ratios,
    results,
  };
  writeResult(values.out, report);
}

function hasTaskset() {
  try {
    execFileSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function round2(value) {
  return Math.round(value * 100) / 100;
}

function round3(value) {
  return Math.round(value * 1000) / 1000;
}
