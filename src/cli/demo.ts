// `graceful-listener demo` (`npm run demo`): the same shutdown under the same
// load, once with Node's server.close() and once with listener.close(), side
// by side. The server runs in a child process (demo-server.ts); the clients
// are the load kit (graceful-listener/testing) in this one.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { CloseReport, Pending } from '../index.js';
import { ERROR_CODES, runUnderLoad, selfSignedCertificate, type LoadReport } from '../testing/index.js';
import type { DemoProtocol, ParentMessage, ServerMessage, Shutdown } from './demo-server.js';
import { Progress, bar, seconds } from './progress.js';
import { timelineSvg } from './svg.js';
import { table } from './table.js';
import { UsageError, outputDirectory, packageVersion, parseChoice, parseDuration, parseInteger } from './options.js';

export const DEMO_USAGE = `Usage: graceful-listener demo [options]

Starts a server on 127.0.0.1, drives it with concurrent clients and closes it
mid-load twice: once with Node's server.close(), once with listener.close().
Prints what the clients saw; writes report.json and timeline.svg.

Options:
  --protocol http|https|h2         server and client protocol (default https)
  --concurrency N                  concurrent clients (default 64)
  --duration SECONDS               load per run; the close comes halfway (default 3)
  --connection new|keep-alive|both fresh connection per request, kept
                                   connections, or one run of each (default both)
  --close-timeout SECONDS          drain deadline for both closes (default 5)
  --out DIR                        where to write the report (default: a new
                                   directory under the system's temp dir)
  --json                           print the report as JSON on stdout
  -h, --help`;

export interface DemoOptions {
  protocol: DemoProtocol;
  concurrency: number;
  durationMs: number;
  connections: ('new' | 'keep-alive')[];
  closeTimeoutMs: number;
}

export interface DemoRun {
  shutdown: Shutdown;
  connection: 'new' | 'keep-alive';
  /** The accept queue at the moment of close (`pending()`; handshakes in SYN_RECV included). */
  pendingAtClose: { queued: number; handshaking: number | null; backlog: number | null } | null;
  /** listener.close()'s report; null for server.close(). */
  closeReport: CloseReport | null;
  /** Milliseconds from the close until the server had closed. */
  closeMs: number | null;
  /** server.close(): connections destroyed at the deadline. */
  destroyedAtDeadline: number;
  load: LoadReport<unknown>;
}

export interface DemoSummaryRow {
  shutdown: Shutdown;
  connection: 'new' | 'keep-alive';
  served: number;
  ECONNRESET: number;
  ECONNREFUSED: number;
  otherErrors: number;
  p50Ms: number;
  p99Ms: number;
  pendingAtClose: DemoRun['pendingAtClose'];
}

export interface DemoReport {
  tool: 'graceful-listener demo';
  version: string;
  node: string;
  startedAt: string;
  options: DemoOptions;
  summary: DemoSummaryRow[];
  runs: DemoRun[];
  files: { directory: string; json: string; svg: string };
}

const SHUTDOWNS: Shutdown[] = ['server.close()', 'listener.close()'];

/** Messages from the server child, in order, awaited by type. */
class Mailbox {
  readonly #queue: ServerMessage[] = [];
  readonly #waiters: { type: ServerMessage['type']; resolve: (m: ServerMessage) => void }[] = [];
  #failure: Error | undefined;
  readonly #rejects = new Set<(error: Error) => void>();

  constructor(child: ChildProcess, stderr: () => string) {
    child.on('message', (message: ServerMessage) => {
      if (message.type === 'failed') return this.#fail(new Error(`demo server failed: ${message.message}`));
      const waiter = this.#waiters.findIndex((w) => w.type === message.type);
      if (waiter >= 0) this.#waiters.splice(waiter, 1)[0]!.resolve(message);
      else if (message.type !== 'sample') this.#queue.push(message);
    });
    child.on('exit', (code, signal) => this.#fail(new Error(`demo server exited (${code ?? signal}): ${stderr()}`)));
    child.on('error', (error) => this.#fail(error));
  }

  next<K extends ServerMessage['type']>(type: K, timeoutMs: number): Promise<Extract<ServerMessage, { type: K }>> {
    const queued = this.#queue.findIndex((m) => m.type === type);
    if (queued >= 0) return Promise.resolve(this.#queue.splice(queued, 1)[0] as Extract<ServerMessage, { type: K }>);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#rejects.delete(reject);
        reject(new Error(`demo server: no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#rejects.add(reject);
      this.#waiters.push({
        type,
        resolve: (message) => {
          clearTimeout(timer);
          this.#rejects.delete(reject);
          resolve(message as Extract<ServerMessage, { type: K }>);
        },
      });
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const reject of this.#rejects) reject(error);
    this.#rejects.clear();
  }
}

function describeClients(protocol: DemoProtocol, connection: 'new' | 'keep-alive'): string {
  if (connection === 'keep-alive') return protocol === 'h2' ? 'h2 sessions kept' : 'keep-alive';
  return protocol === 'http' ? 'new conn./request' : 'new TLS conn./request';
}

async function runOnce(
  options: DemoOptions,
  cert: { key: string; cert: string },
  shutdown: Shutdown,
  connection: 'new' | 'keep-alive',
  step: { index: number; total: number },
  progress: Progress,
): Promise<DemoRun> {
  let stderr = '';
  const child = fork(path.join(__dirname, 'demo-server.js'), [], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const mailbox = new Mailbox(child, () => stderr);
  let queue: { queued: number; open: number } | undefined;
  child.on('message', (message: ServerMessage) => {
    if (message.type === 'sample') queue = { queued: message.queued, open: message.open };
  });
  try {
    const start: ParentMessage = { type: 'start', protocol: options.protocol, shutdown, key: cert.key, cert: cert.cert };
    child.send(start);
    const { port } = await mailbox.next('ready', 15_000);
    const label = `[${step.index + 1}/${step.total}] ${shutdown} · ${describeClients(options.protocol, connection)}`;
    progress.log(
      `${label}: ${options.concurrency} clients for ${seconds(options.durationMs)}, close at ${seconds(options.durationMs / 2)}`,
    );
    let closeInfo: Omit<DemoRun, 'shutdown' | 'connection' | 'load'> | undefined;
    const load = await runUnderLoad({
      url: `${options.protocol === 'http' ? 'http' : 'https'}://127.0.0.1:${port}/`,
      protocol: options.protocol === 'h2' ? 'h2' : 'http1',
      concurrency: options.concurrency,
      duration: options.durationMs,
      connection,
      // Clients refused after the close retry at the pace a real client would.
      backoff: 100,
      duringTimeout: options.closeTimeoutMs + 15_000,
      sample: () => (queue === undefined ? undefined : { queued: queue.queued, open: queue.open }),
      during: async (context) => {
        const closing = mailbox.next('closing', 15_000);
        const closed = mailbox.next('closed', options.closeTimeoutMs + 15_000);
        closed.catch(() => {});
        const close: ParentMessage = { type: 'close', timeout: options.closeTimeoutMs };
        child.send(close);
        const { pending } = await closing;
        context.mark(shutdown);
        // Node's fd is closed: no queue to read from here on.
        if (shutdown === 'server.close()') queue = undefined;
        const done = await closed;
        context.mark('closed');
        queue = undefined;
        closeInfo = {
          pendingAtClose: pendingAtClose(pending, done.report),
          closeReport: done.report,
          closeMs: Math.round(done.durationMs * 10) / 10,
          destroyedAtDeadline: done.destroyed,
        };
        return closeInfo;
      },
      onProgress: (p) => {
        const left = options.durationMs * (step.total - step.index) - Math.min(p.elapsedMs, options.durationMs);
        const close =
          p.during === 'waiting' ? `close at ${seconds(options.durationMs / 2)}` : p.during === 'running' ? 'closing…' : 'closed';
        const other = p.requests - p.responses - p.kinds.reset - p.kinds.refused;
        progress.status(
          `${label} ${bar(p.elapsedMs / options.durationMs, 16)} ${seconds(Math.min(p.elapsedMs, options.durationMs))}` +
            ` · ${close} · ${p.responses} served · ${p.kinds.reset} reset · ${p.kinds.refused} refused · ${other} other` +
            ` · ~${Math.ceil(left / 1000)} s left`,
        );
      },
    });
    const other = load.requests - load.responses - load.kinds.reset - load.kinds.refused;
    progress.log(
      `${label}: ${load.responses} served, ${load.kinds.reset} ECONNRESET, ${load.kinds.refused} ECONNREFUSED, ${other} other`,
    );
    return {
      shutdown,
      connection,
      ...(closeInfo ?? { pendingAtClose: null, closeReport: null, closeMs: null, destroyedAtDeadline: 0 }),
      load,
    };
  } finally {
    if (child.connected) child.disconnect();
    child.kill();
  }
}

function pendingAtClose(pending: Pending | null, report: CloseReport | null): DemoRun['pendingAtClose'] {
  // listener.close() reads the queue itself, right after the SYN gate is on.
  if (report !== null) return { queued: report.queuedAtClose, handshaking: report.handshakingAtClose, backlog: null };
  if (pending !== null) return { queued: pending.queued, handshaking: pending.handshaking ?? null, backlog: pending.backlog };
  return null;
}

function summarize(run: DemoRun): DemoSummaryRow {
  const { load } = run;
  return {
    shutdown: run.shutdown,
    connection: run.connection,
    served: load.responses,
    ECONNRESET: load.kinds.reset,
    ECONNREFUSED: load.kinds.refused,
    otherErrors: load.requests - load.responses - load.kinds.reset - load.kinds.refused,
    p50Ms: load.latency.p50,
    p99Ms: load.latency.p99,
    pendingAtClose: run.pendingAtClose,
  };
}

export async function runDemo(options: DemoOptions, directory: string, progress: Progress): Promise<DemoReport> {
  const startedAt = new Date().toISOString();
  const cert = selfSignedCertificate();
  const plan = options.connections.flatMap((connection) => SHUTDOWNS.map((shutdown) => ({ shutdown, connection })));
  const runs: DemoRun[] = [];
  for (const [index, { shutdown, connection }] of plan.entries()) {
    runs.push(await runOnce(options, cert, shutdown, connection, { index, total: plan.length }, progress));
  }
  progress.clear();
  const files = {
    directory,
    json: path.join(directory, 'report.json'),
    svg: path.join(directory, 'timeline.svg'),
  };
  const report: DemoReport = {
    tool: 'graceful-listener demo',
    version: packageVersion(),
    node: process.version,
    startedAt,
    options,
    summary: runs.map(summarize),
    runs,
    files,
  };
  fs.writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(
    files.svg,
    timelineSvg(
      `graceful-listener demo · ${options.protocol} · ${options.concurrency} clients · close at ${seconds(options.durationMs / 2)}`,
      runs.map((run) => ({
        title: `${run.shutdown} · ${describeClients(options.protocol, run.connection)}`,
        report: run.load,
        queueKey: 'queued',
      })),
    ),
  );
  return report;
}

function formatPending(pending: DemoRun['pendingAtClose']): string {
  if (pending === null) return '?';
  return `${pending.queued} queued, ${pending.handshaking ?? '?'} in handshake`;
}

export function formatDemo(report: DemoReport): string {
  const { options } = report;
  const lines = [
    `graceful-listener demo: ${options.protocol} on 127.0.0.1, ${options.concurrency} concurrent clients, ` +
      `${seconds(options.durationMs)} per run, the close ${seconds(options.durationMs / 2)} in`,
    '',
    table(
      [
        { title: 'shutdown' },
        { title: 'clients' },
        { title: 'served', align: 'right' },
        { title: 'ECONNRESET', align: 'right' },
        { title: 'ECONNREFUSED', align: 'right' },
        { title: 'other', align: 'right' },
        { title: 'p50 ms', align: 'right' },
        { title: 'p99 ms', align: 'right' },
        { title: 'pending() at close' },
      ],
      report.summary.map((row) => [
        row.shutdown,
        describeClients(options.protocol, row.connection),
        String(row.served),
        String(row.ECONNRESET),
        String(row.ECONNREFUSED),
        String(row.otherErrors),
        row.p50Ms.toFixed(1),
        row.p99Ms.toFixed(1),
        formatPending(row.pendingAtClose),
      ]),
    ),
    '',
  ];
  for (const run of report.runs) {
    const name = `${run.shutdown} · ${describeClients(options.protocol, run.connection)}`;
    // The table's columns: RSTs (ECONNRESET, EPIPE) and refusals; everything else by code here.
    const otherText = Object.entries(run.load.errors)
      .filter(([code]) => !['ECONNRESET', 'EPIPE', 'ECONNREFUSED'].includes(code))
      .map(([code, count]) => `${count} ${code}`)
      .join(', ');
    if (otherText !== '') lines.push(`${name}: other errors: ${otherText}`);
    if (run.closeReport !== null) {
      const r = run.closeReport;
      const extra = (r as unknown as { protocol?: unknown }).protocol;
      lines.push(
        `${name}: close report: ${r.accepted} accepted while draining, ${r.served} served, ${r.ended} ended at the deadline, ` +
          `${r.destroyed} destroyed, closed in ${Math.round(r.durationMs)} ms` +
          (extra !== undefined ? ` · ${JSON.stringify(extra)}` : ''),
      );
    } else if (run.closeMs !== null) {
      lines.push(
        `${name}: server closed in ${Math.round(run.closeMs)} ms` +
          (run.destroyedAtDeadline > 0 ? `, ${run.destroyedAtDeadline} connections destroyed at the deadline` : ''),
      );
    }
  }
  const codes = new Set(report.runs.flatMap((run) => Object.keys(run.load.errors)));
  const explained = [...codes].filter((code) => ERROR_CODES[code] !== undefined);
  lines.push(
    '',
    'ECONNRESET counts RSTs reported by the kernel: a client whose connection the server had accepted into its queue,',
    'or whose request was in flight, and that got nothing. ECONNREFUSED: clients that came after the close (nothing',
    'was sent; safe to retry). Node labels a clean close before the response ECONNRESET too ("socket hang up"):',
    'those are counted under other errors, by what happened:',
    ...explained.map((code) => `  ${code}: ${ERROR_CODES[code]}`),
    '',
    `report:   ${report.files.json}`,
    `timeline: ${report.files.svg}`,
  );
  return lines.join('\n');
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      protocol: { type: 'string', default: 'https' },
      concurrency: { type: 'string', default: '64' },
      duration: { type: 'string', default: '3' },
      connection: { type: 'string', default: 'both' },
      'close-timeout': { type: 'string', default: '5' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  const connection = parseChoice('connection', values.connection, ['new', 'keep-alive', 'both'] as const);
  const options: DemoOptions = {
    protocol: parseChoice('protocol', values.protocol, ['http', 'https', 'h2'] as const),
    concurrency: parseInteger('concurrency', values.concurrency, 1, 1000),
    durationMs: parseDuration('duration', values.duration, { min: 200, max: 600_000 }),
    connections: connection === 'both' ? ['new', 'keep-alive'] : [connection],
    closeTimeoutMs: parseDuration('close-timeout', values['close-timeout'], { min: 100, max: 600_000 }),
  };
  const directory = outputDirectory(values.out, 'graceful-listener-demo');
  const progress = new Progress(process.stderr);
  const report = await runDemo(options, directory, progress);
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDemo(report)}\n`);
  const broken = report.summary.filter((row) => row.shutdown === 'listener.close()' && row.ECONNRESET > 0);
  if (broken.length > 0) {
    process.stderr.write(
      `graceful-listener reset ${broken.reduce((sum, row) => sum + row.ECONNRESET, 0)} clients: this is a bug, please report it with ${report.files.json}\n`,
    );
    return 1;
  }
  return 0;
}

export { UsageError };
