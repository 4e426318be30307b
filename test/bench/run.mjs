// npm run bench: every benchmark in one run, each measured side by side with
// Node's own path, then one summary table of the ratios. Not a test.
//
//   npm run bench                       (compiles dist/ first)
//   node test/bench/run.mjs [--only accept,listen-accept,close,resources,drain,soak,restart]
//
// Each benchmark writes bench-results/<name>.json; the summary goes to
// bench-results/summary.json. The drain benchmark drives the server with wrk
// and h2load (Debian packages wrk and nghttp2-client) and is skipped, with a
// note, when they are not installed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const results = path.resolve(here, '..', '..', 'bench-results');

const BENCHES = [
  { name: 'accept', file: 'accept.mjs', what: 'raw batched accept vs net.Server accept' },
  { name: 'listen-accept', file: 'listen-accept.mjs', what: 'listen(server) vs server.listen(), new connection per request' },
  { name: 'close', file: 'close.mjs', what: 'resets per close under fresh-TLS load; idle close latency' },
  { name: 'resources', file: 'resources.mjs', what: 'pending() cost; RSS and fds over 100k accept/release cycles; diagnostics channels cost', nodeArgs: ['--expose-gc'] },
  { name: 'drain', file: 'drain.mjs', what: 'wrk keep-alive and h2load, close mid-run', needs: ['wrk', 'h2load'] },
  { name: 'soak', file: 'soak.mjs', what: '100 close + re-listen cycles on one port under fresh-TLS load; fds and RSS', nodeArgs: ['--expose-gc'] },
  { name: 'restart', file: 'restart.mjs', what: 'failed requests per restart under load: close-then-listen vs handover (processes), replace() in one process' },
];

function installed(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const fixed = (value, digits = 2) => (typeof value === 'number' ? value.toFixed(digits) : 'n/a');

function summarize(name, json) {
  switch (name) {
    case 'accept':
      return [
        ['raw accept rate (queue drain) vs net.Server', `${fixed(json.ratios.drain.raw.acceptRate)}×`],
        ['raw server CPU per accept vs net.Server', `${fixed(json.ratios.drain.raw.cpuPerAccept)}×`],
      ];
    case 'listen-accept':
      return Object.entries(json.ratios).flatMap(([protocol, ratio]) => [
        [`${protocol} request rate, listen(server) vs server.listen()`, `${fixed(ratio.requestRate)}×`],
        [
          `${protocol} efficiency (Node CPU per request / ours), median [min–max]`,
          `${fixed(ratio.efficiency, 3)} [${fixed(ratio.efficiencyMin)}–${fixed(ratio.efficiencyMax)}]` +
            (ratio.goalMet ? '' : ` GOAL NOT MET (>= ${fixed(ratio.goal)})`),
        ],
      ]);
    case 'close':
      return [
        [
          'resets per close, listener.close() vs server.close()',
          `${fixed(json.summary.listener.resetsPerClose.mean, 1)} vs ${fixed(json.summary.node.resetsPerClose.mean, 1)}`,
        ],
        [
          'idle close latency (median), listener vs server',
          `${fixed(json.idle.listener.medianUs, 0)} µs vs ${fixed(json.idle.node.medianUs, 0)} µs`,
        ],
      ];
    case 'resources':
      return [
        ['pending() cost vs server.address()', `${fixed(json.pending.ratioToServerAddress)}× (${fixed(json.pending.nsPerCall, 0)} ns)`],
        ['stats() per call (budget 2 µs)', `${fixed(json.stats?.nsPerCall, 0)} ns`],
        [
          'pending({ handshakes: true }) (opt-in) per 10k sockets',
          `${fixed((json.handshakes?.nsPer10kSockets ?? NaN) / 1000, 1)} µs (${json.handshakes?.sockets} sockets)`,
        ],
        [`fd growth over ${json.cycles.cycles} accept/release cycles`, String(json.cycles.fdGrowth)],
        ['RSS growth over the same cycles', `${fixed(json.cycles.rssGrowthMiB, 1)} MiB`],
        ['diagnostics channels: events per accept / one publish vs one accept (1 subscriber)', `0 / ${fixed(json.channels?.publishRatioToAccept, 4)}×`],
      ];
    case 'drain':
      return Object.entries(json.summary).map(([scenario, variants]) => {
        const cut = (totals) => (totals.read ?? 0) + (totals.failed ?? 0) + (totals.errored ?? 0) + (totals.timeout ?? 0);
        return [`${scenario}: requests cut, listener.close() vs server.close()`, `${cut(variants.listener.totals)} vs ${cut(variants.node.totals)}`];
      });
    case 'soak': {
      const { listener, node } = json.summary;
      const failures = (totals) => totals.closed + totals.timeout + totals.tls + totals.other;
      return [
        [
          `resets per close, listener.close() (${listener.closes}) vs server.close() (${node.closes})`,
          `${fixed(listener.resetsPerClose.mean)} vs ${fixed(node.resetsPerClose.mean)}`,
        ],
        [
          'listener: refused / other errors / served',
          `${listener.refused} / ${failures(listener)} / ${listener.served}`,
        ],
        [
          `fds and RSS per cycle, cycles ${json.growth.fromCycle} to ${json.growth.toCycle}`,
          `${fixed(json.growth.fdsPerCycle)} fds, ${fixed(json.growth.rssKiBPerCycle, 0)} KiB`,
        ],
      ];
    }
    case 'restart': {
      const { handover, handoverIdle, replace } = json.summary;
      const plain = json.summary['close-then-listen'];
      const window = (f) => `${fixed(f.refusalWindowMs.p50, 0)} / ${fixed(f.refusalWindowMs.p99, 0)} ms`;
      return [
        [
          `failed per restart, close-then-listen vs handover (${handover.restarts} restarts, ${json.config.concurrency} clients)`,
          `${fixed(plain.failedPerRestart.mean, 1)} vs ${fixed(handover.failedPerRestart.mean, 1)}`,
        ],
        ['refusal window per restart p50 / p99, close-then-listen vs handover', `${window(plain)} vs ${window(handover)}`],
        [
          "handover: successor's listen() p50 / p99, under load (1 client)",
          `${fixed(handover.handover.listenMs.p50, 1)} / ${fixed(handover.handover.listenMs.p99, 1)} ms ` +
            `(${fixed(handoverIdle.handover.listenMs.p50, 1)} / ${fixed(handoverIdle.handover.listenMs.p99, 1)} ms)`,
        ],
        [
          `replace() every ${json.config.replaceEveryMs} ms (${replace.restarts}): failed per replace; refusal window max`,
          `${fixed(replace.failedPerRestart.mean, 1)}; ${fixed(replace.refusalWindowMs.max, 0)} ms`,
        ],
      ];
    }
    default:
      return [];
  }
}

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const only = values.only?.split(',');
const summary = { date: new Date().toISOString(), node: process.version, benches: {} };
const rows = [];
let failed = false;

for (const bench of BENCHES) {
  if (only !== undefined && !only.includes(bench.name)) continue;
  const missing = (bench.needs ?? []).filter((command) => !installed(command));
  if (missing.length > 0) {
    const note = `skipped: ${missing.join(', ')} not installed (apt-get install wrk nghttp2-client)`;
    console.log(`\n=== ${bench.name}: ${note}`);
    summary.benches[bench.name] = { skipped: note };
    continue;
  }
  console.log(`\n=== ${bench.name}: ${bench.what}`);
  const run = spawnSync(process.execPath, [...(bench.nodeArgs ?? []), path.join(here, bench.file)], { stdio: 'inherit' });
  const output = path.join(results, `${bench.name}.json`);
  if (run.status !== 0 || !fs.existsSync(output)) {
    console.log(`=== ${bench.name} failed (exit ${run.status})`);
    summary.benches[bench.name] = { failed: run.status };
    failed = true;
    continue;
  }
  const json = JSON.parse(fs.readFileSync(output, 'utf8'));
  const lines = summarize(bench.name, json);
  summary.benches[bench.name] = { file: path.relative(process.cwd(), output), figures: Object.fromEntries(lines) };
  for (const [label, value] of lines) rows.push([bench.name, label, value]);
}

const width = (column) => Math.max(...rows.map((row) => row[column].length), 0);
console.log('\nSummary (ratios are ours / Node\'s own path, measured in this run)');
for (const [bench, label, value] of rows) {
  console.log(`  ${bench.padEnd(width(0))}  ${label.padEnd(width(1))}  ${value}`);
}
fs.mkdirSync(results, { recursive: true });
fs.writeFileSync(path.join(results, 'summary.json'), JSON.stringify(summary, null, 2));
console.log(`\nwrote ${path.join(results, 'summary.json')}`);
process.exitCode = failed ? 1 : 0;
