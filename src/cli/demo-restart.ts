// `graceful-listener demo --scenario restart`: the same server restarted
// under the same load, once close-then-listen (each process closes with
// listener.close(), then the next one listens on the port) and once with a
// handover (the next process takes the listening socket over, the old one
// drains), side by side. Each server is a restart-server.ts process; the
// restarts and the clients are the load kit's runRestarts, in this process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runRestarts, selfSignedCertificate, type RestartMode, type RestartReport } from '../testing/index.js';
import { headline, headlineText, otherErrors } from '../testing/outcome.js';
import { writeReport, type ToolReport } from '../testing/report.js';
import type { DemoProtocol } from './demo-app.js';
import { OUTCOME_COLUMNS, outcomeCells, outcomeSummary, printReport, table, type OutcomeSummary } from './output.js';
import { Progress, bar, seconds } from './progress.js';

type Connection = 'new' | 'keep-alive';
export type RestartMethod = Extract<RestartMode, 'close-then-listen' | 'handover'>;

export interface RestartDemoOptions {
  scenario: 'restart';
  protocol: DemoProtocol;
  concurrency: number;
  connections: Connection[];
  restarts: number;
  everyMs: number;
  closeTimeoutMs: number;
}

interface RestartRun {
  method: RestartMethod;
  connection: Connection;
  load: RestartReport<number>;
}

interface RestartSummaryRow extends OutcomeSummary {
  method: RestartMethod;
  connection: Connection;
  /** Requests without a response, per restart window. */
  failedPerRestart: number[];
  /** The longest time clients were refused around one restart (first to last refusal). */
  maxRefusalWindowMs: number;
}

export type RestartDemoReport = ToolReport<
  'graceful-listener demo',
  { scenario: 'restart'; options: RestartDemoOptions; summary: RestartSummaryRow[]; runs: RestartRun[] }
>;

const METHODS: RestartMethod[] = ['close-then-listen', 'handover'];

const METHOD_TITLES: Record<RestartMethod, string> = {
  'close-then-listen': 'listener.close() → listen()',
  handover: 'handover',
};

function describeClients(protocol: DemoProtocol, connection: Connection): string {
  if (connection === 'keep-alive') return protocol === 'h2' ? 'h2 sessions kept' : 'keep-alive';
  return protocol === 'http' ? 'new conn./request' : 'new TLS conn./request';
}

function runName(protocol: DemoProtocol, run: { method: RestartMethod; connection: Connection }): string {
  return `${METHOD_TITLES[run.method]} · ${describeClients(protocol, run.connection)}`;
}

/** Where the certificate and the control sockets live for the demo's run; removed at the end. */
function workDirectory(): { dir: string; key: string; cert: string; pem: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-restart-'));
  const { key, cert } = selfSignedCertificate();
  fs.writeFileSync(path.join(dir, 'key.pem'), key, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'cert.pem'), cert);
  return { dir, key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem'), pem: cert };
}

async function runOnce(
  options: RestartDemoOptions,
  work: ReturnType<typeof workDirectory>,
  method: RestartMethod,
  connection: Connection,
  step: { index: number; total: number },
  progress: Progress,
): Promise<RestartRun> {
  const server = path.join(__dirname, 'restart-server.js');
  const control = path.join(work.dir, `control-${step.index}.sock`);
  const label = `[${step.index + 1}/${step.total}] ${runName(options.protocol, { method, connection })}`;
  progress.log(`${label}: ${options.concurrency} clients, ${options.restarts} restarts, one every ${seconds(options.everyMs)}`);
  const load = await runRestarts({
    command: ({ port }) => [
      process.execPath,
      server,
      '--port', String(port ?? 0),
      '--protocol', options.protocol,
      '--key', work.key,
      '--cert', work.cert,
      '--close-timeout', String(options.closeTimeoutMs),
      ...(method === 'handover' ? ['--handover', control] : []),
    ],
    mode: method,
    url: (port) => `${options.protocol === 'http' ? 'http' : 'https'}://127.0.0.1:${port}/`,
    protocol: options.protocol === 'h2' ? 'h2' : 'http1',
    restarts: options.restarts,
    every: options.everyMs,
    concurrency: options.concurrency,
    connection,
    // Clients refused between two processes retry at the pace a real client would.
    backoff: 100,
    exitTimeout: options.closeTimeoutMs + 5000,
    onProgress: (p) => {
      progress.status(
        `${label} ${bar(p.restarted / Math.max(1, p.restarts))} restart ${p.restarted}/${p.restarts}` +
          ` · ${headlineText(p)}${p.phase === 'finishing' ? ' · finishing' : ''}`,
      );
    },
  });
  progress.log(`${label}: ${headlineText(load)}`);
  return { method, connection, load };
}

function summarize(run: RestartRun): RestartSummaryRow {
  return {
    method: run.method,
    connection: run.connection,
    ...outcomeSummary(run.load),
    failedPerRestart: run.load.restarts.map((window) => window.failed),
    maxRefusalWindowMs: Math.max(0, ...run.load.restarts.map((window) => window.refusalWindowMs)),
  };
}

export async function runRestartDemo(options: RestartDemoOptions, out: string | undefined, progress: Progress): Promise<RestartDemoReport> {
  const startedAt = new Date().toISOString();
  const work = workDirectory();
  const plan = options.connections.flatMap((connection) => METHODS.map((method) => ({ method, connection })));
  const runs: RestartRun[] = [];
  try {
    for (const [index, { method, connection }] of plan.entries()) {
      runs.push(await runOnce(options, work, method, connection, { index, total: plan.length }, progress));
    }
  } finally {
    progress.clear();
    fs.rmSync(work.dir, { recursive: true, force: true });
  }
  return writeReport(
    { tool: 'graceful-listener demo', startedAt, out },
    { scenario: 'restart' as const, options, summary: runs.map(summarize), runs },
    {
      heading:
        `graceful-listener demo --scenario restart · ${options.protocol} · ${options.concurrency} clients · ` +
        `${options.restarts} restarts, one every ${seconds(options.everyMs)}`,
      panels: runs.map((run) => ({ title: runName(options.protocol, run), report: run.load })),
    },
  );
}

function perRestart(window: RestartReport['restarts'][number]): string {
  if (window.failed === 0) return '0';
  const parts = [`${window.refused} refused`];
  if (window.reset > 0) parts.push(`${window.reset} reset`);
  if (window.other > 0) parts.push(`${window.other} other`);
  return `${window.failed} (${parts.join(', ')}; ${Math.round(window.refusalWindowMs)} ms)`;
}

export function formatRestartDemo(report: RestartDemoReport): string[] {
  const { options } = report;
  const lines = [
    `graceful-listener demo --scenario restart: ${options.protocol} on 127.0.0.1, ${options.concurrency} concurrent clients, ` +
      `${options.restarts} restarts of the server process, one every ${seconds(options.everyMs)}`,
    '',
    table(
      [{ title: 'restart' }, { title: 'clients' }, ...OUTCOME_COLUMNS, { title: 'refused for (max)', align: 'right' }],
      report.runs.map((run, i) => [
        METHOD_TITLES[run.method],
        describeClients(options.protocol, run.connection),
        ...outcomeCells(run.load),
        `${Math.round(report.summary[i]!.maxRefusalWindowMs)} ms`,
      ]),
    ),
    '',
    'failed requests per restart (what failed; first to last refusal):',
    table(
      [{ title: '#', align: 'right' }, ...report.runs.map((run) => ({ title: runName(options.protocol, run) }))],
      Array.from({ length: Math.max(0, ...report.runs.map((run) => run.load.restarts.length)) }, (_, i) => [
        String(i + 1),
        ...report.runs.map((run) => {
          const window = run.load.restarts[i];
          return window === undefined ? '' : perRestart(window);
        }),
      ]),
    ),
    '',
  ];
  for (const run of report.runs) {
    const other = otherErrors(run.load.errors);
    if (other.length > 0) lines.push(`${runName(options.protocol, run)}: other errors: ${other.map(([code, count]) => `${count} ${code}`).join(', ')}`);
  }
  lines.push(
    'close-then-listen: between the old process\'s close and the new one\'s listen() nothing owns the port, and every',
    'client that connects meanwhile is refused (ECONNREFUSED). handover: the new process takes the listening socket',
    'over from the old one (listen(server, { handover })), so the port is never closed; the old process drains and exits.',
    '',
  );
  return lines;
}

export function printRestartDemo(report: RestartDemoReport, json: boolean): number {
  printReport(report, json, () => formatRestartDemo(report));
  const lost = report.summary.filter((row) => row.method === 'handover' && (row.ECONNRESET > 0 || row.ECONNREFUSED > 0));
  if (lost.length > 0) {
    const count = lost.reduce((sum, row) => sum + row.ECONNRESET + row.ECONNREFUSED, 0);
    process.stderr.write(`the handover reset or refused ${count} clients: this is a bug, please report it with ${report.files.json}\n`);
    return 1;
  }
  return 0;
}
