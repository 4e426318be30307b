// Protocol-aware drain under real load generators, listener.close() against
// server.close(), in one run. Not a test: it prints a table and writes
// bench-results/drain.json. Uses dist/ (build it first: npx tsc -p tsconfig.json).
// Needs wrk and h2load (Debian packages wrk, nghttp2-client).
//
//   node test/bench/drain.mjs [--rounds 3] [--duration 6] [--close-at 3] [--out file.json]
//
// Scenarios, each with both variants, alternating round by round:
//   wrk http     wrk -t2 -c64 -d<duration>s against http.createServer
//   wrk https    the same against https.createServer
//   h2load h2c   h2load -c32 -m4 -t2 -D<duration> against http2.createServer
//   h2load h2    the same against http2.createSecureServer (TLS, ALPN h2)
// Variants:
//   listener     listen(server) + listener.close({ timeout: 10000 })
//   node         server.listen() + server.close()
// The server runs in a child process (fresh port each round) and answers each
// request on the next turn of its loop. --close-at seconds after the load
// generator started, the server is told to close; the load generator runs on
// to the end of its duration. Figures per round:
//   wrk     requests, socket errors (connect / read / write / timeout), non-2xx.
//           After the shutdown every reconnect is refused, for both variants:
//           wrk counts it as a write error over http (its plain connect() is
//           non-blocking and unchecked, the refusal shows on the first write)
//           and as a connect error over https. Read errors (and timeouts) are
//           requests cut on a connection the server closed under them.
//   h2load  requests done / succeeded / failed / errored (errored: network
//           level — a reset stream or a lost connection, h2load's own
//           definition), and the connections it could not make.
import { execFileSync, fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, writeResult, certificate } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const packageRoot = path.resolve(here, '..', '..');
const distEntry = path.join(packageRoot, 'dist', 'index.mjs');
const CLOSE_TIMEOUT_MS = 10_000;

const SCENARIOS = {
  'wrk http': { tool: 'wrk', protocol: 'http' },
  'wrk https': { tool: 'wrk', protocol: 'https' },
  'h2load h2c': { tool: 'h2load', protocol: 'h2c' },
  'h2load h2': { tool: 'h2load', protocol: 'h2' },
};
const VARIANTS = ['listener', 'node'];
const LABEL = { listener: 'listener.close()', node: 'server.close()' };

if (process.argv[2] === '--server') await runServer();
else await runBench();

// One round's server, in its own process.
async function runServer() {
  const { listen } = await import(distEntry);
  const { protocol, variant, key, cert } = await new Promise((resolve) => process.once('message', resolve));
  process.on('disconnect', () => process.exit(0));
  const answer = (_request, response) => setImmediate(() => response.end('ok\n'));
  let server;
  if (protocol === 'http') server = http.createServer(answer);
  else if (protocol === 'https') server = https.createServer({ key, cert }, answer);
  else {
    server = protocol === 'h2' ? http2.createSecureServer({ key, cert }) : http2.createServer();
    server.on('stream', (stream) => {
      setImmediate(() => {
        if (stream.destroyed || stream.closed) return;
        stream.respond({ ':status': 200 });
        stream.end('ok\n');
      });
    });
  }
  server.on('sessionError', () => {});
  server.on('clientError', (_error, socket) => socket.destroy());
  let listener;
  if (variant === 'listener') listener = await listen(server, { host: '127.0.0.1' });
  else await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.send({ port: server.address().port });

  await new Promise((resolve) => process.once('message', resolve));
  const started = performance.now();
  if (variant === 'listener') {
    const report = await listener.close({ timeout: CLOSE_TIMEOUT_MS });
    process.send({ closeMs: performance.now() - started, report });
  } else {
    server.close(() => process.send({ closeMs: performance.now() - started }));
  }
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

function parseWrk(out) {
  const number = (regex) => Number(out.match(regex)?.[1] ?? 0);
  return {
    requests: number(/(\d+) requests in/),
    connect: number(/Socket errors: connect (\d+)/),
    read: number(/Socket errors: connect \d+, read (\d+)/),
    write: number(/Socket errors: connect \d+, read \d+, write (\d+)/),
    timeout: number(/Socket errors: connect \d+, read \d+, write \d+, timeout (\d+)/),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/),
  };
}

function parseH2load(out) {
  const line = out.match(
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
  );
  if (line === null) throw new Error(`unexpected h2load output:\n${out}`);
  const [, total, started, done, succeeded, failed, errored, timeout] = line.map(Number);
  return {
    total,
    started,
    done,
    succeeded,
    failed,
    errored,
    timeout,
    connectFailures: (out.match(/could not connect/g) ?? []).length,
  };
}

async function round(scenario, variant, options, tls) {
  const { tool, protocol } = SCENARIOS[scenario];
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const message = () => new Promise((resolve) => child.once('message', resolve));
  child.send({ protocol, variant, ...tls });
  const { port } = await message();
  const scheme = protocol === 'http' || protocol === 'h2c' ? 'http' : 'https';
  const url = `${scheme}://127.0.0.1:${port}/`;
  const load =
    tool === 'wrk'
      ? run('wrk', ['-t2', '-c64', `-d${options.duration}s`, url])
      : run('h2load', ['-c32', '-m4', '-t2', `-D${options.duration}`, url]);
  const closed = new Promise((resolve) => {
    setTimeout(() => {
      const reply = message();
      child.send('close');
      resolve(reply);
    }, options.closeAt * 1000);
  });
  const { out } = await load;
  const bound = new Promise((resolve) => setTimeout(() => resolve({ closeMs: null }), CLOSE_TIMEOUT_MS + 5_000));
  const close = await Promise.race([closed, bound]);
  child.kill();
  const figures = tool === 'wrk' ? parseWrk(out) : parseH2load(out);
  return {
    ...figures,
    closeMs: close.closeMs === null ? null : Math.round(close.closeMs),
    ...(close.report !== undefined ? { report: close.report } : {}),
  };
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function mean(values) {
  return Math.round((sum(values) / values.length) * 10) / 10;
}

function summarize(rounds) {
  const first = rounds[0];
  const keys = Object.keys(first).filter((key) => typeof first[key] === 'number');
  const totals = Object.fromEntries(keys.map((key) => [key, sum(rounds.map((r) => r[key] ?? 0))]));
  const closeMs = rounds.map((r) => r.closeMs).filter((ms) => ms !== null);
  return { totals, closeMsMean: closeMs.length ? mean(closeMs) : null, notClosed: rounds.length - closeMs.length };
}

async function runBench() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '6' },
      'close-at': { type: 'string', default: '3' },
      out: { type: 'string', default: path.join(packageRoot, 'bench-results', 'drain.json') },
    },
  });
  if (!fs.existsSync(distEntry)) throw new Error(`${distEntry} is missing: run "npx tsc -p tsconfig.json" first`);
  for (const tool of ['wrk', 'h2load']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is missing (Debian: apt-get install -y wrk nghttp2-client)`);
    }
  }
  const options = { rounds: Number(values.rounds), duration: Number(values.duration), closeAt: Number(values['close-at']) };
  const tls = certificate();
  console.log(
    `drain bench — Node ${process.version}, ${os.cpus().length} cores, kernel ${os.release()}; ` +
      `${options.rounds} rounds per scenario and variant, ${options.duration} s of load, close after ${options.closeAt} s`,
  );

  const rounds = [];
  for (const scenario of Object.keys(SCENARIOS)) {
    for (let r = 0; r < options.rounds; r++) {
      for (const variant of r % 2 ? [...VARIANTS].reverse() : VARIANTS) {
        const result = await round(scenario, variant, options, tls);
        rounds.push({ scenario, variant, round: r + 1, ...result });
        const { report, ...shown } = result;
        const figures = Object.entries(shown).map(([key, value]) => `${key} ${value}`).join(', ');
        console.log(`  ${scenario.padEnd(10)}  ${LABEL[variant].padEnd(16)}  round ${r + 1}: ${figures}`);
      }
    }
  }

  const summary = {};
  for (const scenario of Object.keys(SCENARIOS)) {
    summary[scenario] = {};
    for (const variant of VARIANTS) {
      summary[scenario][variant] = summarize(rounds.filter((r) => r.scenario === scenario && r.variant === variant));
    }
  }

  console.log('');
  console.log(`totals over ${options.rounds} rounds`);
  console.log('| scenario   | variant          | requests | connect errors | read errors | write errors | timeouts | non-2xx | close (mean) |');
  console.log('|------------|------------------|----------|----------------|-------------|--------------|----------|---------|--------------|');
  for (const scenario of ['wrk http', 'wrk https']) {
    for (const variant of VARIANTS) {
      const { totals: t, closeMsMean, notClosed } = summary[scenario][variant];
      const close = closeMsMean === null ? 'never' : `${closeMsMean} ms${notClosed ? ` (${notClosed} never)` : ''}`;
      console.log(
        `| ${scenario.padEnd(10)} | ${LABEL[variant].padEnd(16)} | ${String(t.requests).padStart(8)} | ${String(t.connect).padStart(14)} | ` +
          `${String(t.read).padStart(11)} | ${String(t.write).padStart(12)} | ${String(t.timeout).padStart(8)} | ${String(t.non2xx).padStart(7)} | ${close.padStart(12)} |`,
      );
    }
  }
  console.log(
    'After the shutdown every reconnect is refused. wrk counts that refusal as a write error over http (its plain\n' +
      'connect() is non-blocking and unchecked: the refusal shows on the first write) and as a connect error over https.\n' +
      'Requests cut under a connection the server closed are read errors (and timeouts).',
  );
  console.log('');
  console.log('| scenario   | variant          | done     | succeeded | failed | errored | timeouts | could not connect | close (mean) |');
  console.log('|------------|------------------|----------|-----------|--------|---------|----------|-------------------|--------------|');
  for (const scenario of ['h2load h2c', 'h2load h2']) {
    for (const variant of VARIANTS) {
      const { totals: t, closeMsMean, notClosed } = summary[scenario][variant];
      const close = closeMsMean === null ? 'never' : `${closeMsMean} ms${notClosed ? ` (${notClosed} never)` : ''}`;
      console.log(
        `| ${scenario.padEnd(10)} | ${LABEL[variant].padEnd(16)} | ${String(t.done).padStart(8)} | ${String(t.succeeded).padStart(9)} | ` +
          `${String(t.failed).padStart(6)} | ${String(t.errored).padStart(7)} | ${String(t.timeout).padStart(8)} | ${String(t.connectFailures).padStart(17)} | ${close.padStart(12)} |`,
      );
    }
  }

  const report = {
    ...machine('drain'),
    config: {
      ...options,
      wrk: 'wrk -t2 -c64 -d<duration>s',
      h2load: 'h2load -c32 -m4 -t2 -D<duration>',
      listenerCloseTimeoutMs: CLOSE_TIMEOUT_MS,
    },
    summary,
    rounds,
  };
  writeResult(values.out, report);
}
