// `graceful-listener demo` (`npm run demo`): the same shutdown under the same
// load, once with Node's server.close() and once with listener.close(), side
// by side. The server runs in a child process (demo-server.ts); the clients
// are the load kit (graceful-listener/testing) in this one.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { CloseReport } from '../index.js';
import { ERROR_CODES, runUnderLoad, selfSignedCertificate, type LoadReport } from '../testing/index.js';
import { headline, headlineText, otherErrors } from '../testing/outcome.js';
import { writeReport, type ToolReport } from '../testing/report.js';
import type { DemoProtocol, ParentMessage, PendingAtClose, ServerMessage, Shutdown } from './demo-server.js';
import { printRestartDemo, runRestartDemo } from './demo-restart.js';
import { REPORT_FLAGS, UsageError, parseChoice, parseCommand, parseDuration, parseInteger } from './options.js';
import { OUTCOME_COLUMNS, outcomeCells, outcomeSummary, printReport, table, type OutcomeSummary } from './output.js';
import { Progress, bar, seconds } from './progress.js';

export const DEMO_USAGE = `Usage: graceful-listener demo [options]

Starts a server on 127.0.0.1, drives it with concurrent clients and closes it
mid-load twice: once with Node's server.close(), once with listener.close().
Prints what the clients saw; writes report.json and timeline.svg.

With --scenario restart: the server is a process of its own, restarted
--restarts times under load, once close-then-listen (listener.close(), then
the next process listens) and once with a handover (the next process takes
the listening socket over); prints the outcomes per restart.

Options:
  --scenario close|restart         what to do to the server (default close)
  --protocol http|https|h2         server and client protocol (default https)
  --concurrency N                  concurrent clients (default 64; restart: 32)
  --duration SECONDS               close: load per run; the close comes halfway
                                   (default 3)
  --connection new|keep-alive|both fresh connection per request, kept
                                   connections, or one run of each (default both)
  --close-timeout SECONDS          drain deadline for every close (default 5)
  --restarts N                     restart: restarts per run (default 10)
  --every SECONDS                  restart: from one restart to the next
                                   (default 0.5)
  --out DIR                        where to write the report (default: a new
                                   directory under the system's temp dir)
  --json                           print the report as JSON on stdout
  -h, --help`;

type Connection = 'new' | 'keep-alive';

interface DemoOptions {
  protocol: DemoProtocol;
  concurrency: number;
  durationMs: number;
  connections: Connection[];
  closeTimeoutMs: number;
}

/** What the server said about its close; `during()`'s result. */
interface CloseInfo {
  pendingAtClose: PendingAtClose;
  /** listener.close()'s report; null for server.close(). */
  closeReport: CloseReport | null;
  /** Milliseconds from the close until the server had closed. */
  closeMs: number;
  /** server.close(): connections destroyed at the deadline. */
  destroyedAtDeadline: number;
}

interface DemoRun extends CloseInfo {
  shutdown: Shutdown;
  connection: Connection;
  load: LoadReport<CloseInfo>;
}

interface DemoSummaryRow extends OutcomeSummary {
  shutdown: Shutdown;
  connection: Connection;
  pendingAtClose: PendingAtClose;
}

export type DemoReport = ToolReport<
  'graceful-listener demo',
  { options: DemoOptions; summary: DemoSummaryRow[]; runs: DemoRun[] }
>;

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

function describeClients(protocol: DemoProtocol, connection: Connection): string {
  if (connection === 'keep-alive') return protocol === 'h2' ? 'h2 sessions kept' : 'keep-alive';
  return protocol === 'http' ? 'new conn./request' : 'new TLS conn./request';
}

function runName(protocol: DemoProtocol, run: { shutdown: Shutdown; connection: Connection }): string {
  return `${run.shutdown} · ${describeClients(protocol, run.connection)}`;
}

async function runOnce(
  options: DemoOptions,
  cert: { key: string; cert: string },
  shutdown: Shutdown,
  connection: Connection,
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
    const label = `[${step.index + 1}/${step.total}] ${runName(options.protocol, { shutdown, connection })}`;
    progress.log(
      `${label}: ${options.concurrency} clients for ${seconds(options.durationMs)}, close at ${seconds(options.durationMs / 2)}`,
    );
    const load = await runUnderLoad<CloseInfo>({
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
        await closing;
        context.mark(shutdown);
        // Node's fd is closed: no queue to read from here on.
        if (shutdown === 'server.close()') queue = undefined;
        const done = await closed;
        context.mark('closed');
        queue = undefined;
        return {
          pendingAtClose: done.pendingAtClose,
          closeReport: done.report,
          closeMs: Math.round(done.durationMs * 10) / 10,
          destroyedAtDeadline: done.destroyed,
        };
      },
      onProgress: (p) => {
        const left = options.durationMs * (step.total - step.index) - Math.min(p.elapsedMs, options.durationMs);
        const close =
          p.during === 'waiting' ? `close at ${seconds(options.durationMs / 2)}` : p.during === 'running' ? 'closing…' : 'closed';
        progress.status(
          `${label} ${bar(p.elapsedMs / options.durationMs)} ${seconds(Math.min(p.elapsedMs, options.durationMs))}` +
            ` · ${close} · ${headlineText(p)} · ~${Math.ceil(left / 1000)} s left`,
        );
      },
    });
    progress.log(`${label}: ${headlineText(load)}`);
    // during() runs halfway through the load; had it failed, runUnderLoad would have thrown.
    return { shutdown, connection, ...load.during!.result!, load };
  } finally {
    if (child.connected) child.disconnect();
    child.kill();
  }
}

function summarize(run: DemoRun): DemoSummaryRow {
  return {
    shutdown: run.shutdown,
    connection: run.connection,
    ...outcomeSummary(run.load),
    pendingAtClose: run.pendingAtClose,
  };
}

async function runDemo(options: DemoOptions, out: string | undefined, progress: Progress): Promise<DemoReport> {
  const startedAt = new Date().toISOString();
  const cert = selfSignedCertificate();
  const plan = options.connections.flatMap((connection) => SHUTDOWNS.map((shutdown) => ({ shutdown, connection })));
  const runs: DemoRun[] = [];
  for (const [index, { shutdown, connection }] of plan.entries()) {
    runs.push(await runOnce(options, cert, shutdown, connection, { index, total: plan.length }, progress));
  }
  progress.clear();
  return writeReport(
    { tool: 'graceful-listener demo', startedAt, out },
    { options, summary: runs.map(summarize), runs },
    {
      heading: `graceful-listener demo · ${options.protocol} · ${options.concurrency} clients · close at ${seconds(options.durationMs / 2)}`,
      panels: runs.map((run) => ({ title: runName(options.protocol, run), report: run.load, queueKey: 'queued' })),
    },
  );
}

function formatDemo(report: DemoReport): string[] {
  const { options } = report;
  const lines = [
    `graceful-listener demo: ${options.protocol} on 127.0.0.1, ${options.concurrency} concurrent clients, ` +
      `${seconds(options.durationMs)} per run, the close ${seconds(options.durationMs / 2)} in`,
    '',
    table(
      [{ title: 'shutdown' }, { title: 'clients' }, ...OUTCOME_COLUMNS, { title: 'pending() at close' }],
      report.runs.map((run) => [
        run.shutdown,
        describeClients(options.protocol, run.connection),
        ...outcomeCells(run.load),
        `${run.pendingAtClose.queued} queued, ${run.pendingAtClose.handshaking ?? '?'} in handshake`,
      ]),
    ),
    '',
  ];
  for (const run of report.runs) {
    const name = runName(options.protocol, run);
    const other = otherErrors(run.load.errors);
    if (other.length > 0) lines.push(`${name}: other errors: ${other.map(([code, count]) => `${count} ${code}`).join(', ')}`);
    const r = run.closeReport;
    if (r !== null) {
      lines.push(
        `${name}: close report: ${r.accepted} accepted while draining, ${r.served} served, ${r.ended} ended at the deadline, ` +
          `${r.destroyed} destroyed, closed in ${Math.round(r.durationMs)} ms` +
          (r.protocol !== undefined ? ` · ${JSON.stringify(r.protocol)}` : ''),
      );
    } else {
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
  );
  return lines;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, DEMO_USAGE, {
    scenario: { type: 'string', default: 'close' },
    protocol: { type: 'string', default: 'https' },
    concurrency: { type: 'string' },
    duration: { type: 'string' },
    connection: { type: 'string' },
    'close-timeout': { type: 'string', default: '5' },
    restarts: { type: 'string' },
    every: { type: 'string' },
    ...REPORT_FLAGS,
  });
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const scenario = parseChoice('scenario', values.scenario, ['close', 'restart'] as const);
  const only = (flag: string, value: string | undefined, of: 'close' | 'restart'): void => {
    if (value !== undefined && scenario !== of) throw new UsageError(`--${flag} is for --scenario ${of}`);
  };
  only('duration', values.duration, 'close');
  only('restarts', values.restarts, 'restart');
  only('every', values.every, 'restart');
  const connection = parseChoice('connection', values.connection ?? 'both', ['new', 'keep-alive', 'both'] as const);
  const common = {
    protocol: parseChoice('protocol', values.protocol, ['http', 'https', 'h2'] as const),
    concurrency: parseInteger('concurrency', values.concurrency ?? (scenario === 'close' ? '64' : '32'), 1, 1000),
    connections: connection === 'both' ? (['new', 'keep-alive'] as Connection[]) : [connection],
    closeTimeoutMs: parseDuration('close-timeout', values['close-timeout'], { min: 100, max: 600_000 }),
  };
  const progress = new Progress(process.stderr);
  if (scenario === 'restart') {
    const report = await runRestartDemo(
      {
        scenario,
        ...common,
        restarts: parseInteger('restarts', values.restarts ?? '10', 1, 1000),
        everyMs: parseDuration('every', values.every ?? '0.5', { min: 50, max: 60_000 }),
      },
      values.out,
      progress,
    );
    return printRestartDemo(report, values.json);
  }
  const options: DemoOptions = {
    protocol: common.protocol,
    concurrency: common.concurrency,
    durationMs: parseDuration('duration', values.duration ?? '3', { min: 200, max: 600_000 }),
    connections: common.connections,
    closeTimeoutMs: common.closeTimeoutMs,
  };
  const report = await runDemo(options, values.out, progress);
  printReport(report, values.json, () => formatDemo(report));
  const broken = report.summary.filter((row) => row.shutdown === 'listener.close()' && row.ECONNRESET > 0);
  if (broken.length > 0) {
    process.stderr.write(
      `graceful-listener reset ${broken.reduce((sum, row) => sum + row.ECONNRESET, 0)} clients: this is a bug, please report it with ${report.files.json}\n`,
    );
    return 1;
  }
  return 0;
}
