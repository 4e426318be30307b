// `graceful-listener load <url>`: the load kit against any server the user
// owns, with a shell command run halfway (the reconfigure under test).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { ERROR_CODES, ERROR_KINDS, runUnderLoad, type LoadReport } from '../testing/index.js';
import { headlineText } from '../testing/outcome.js';
import { writeReport, type ToolReport } from '../testing/report.js';
import { REPORT_FLAGS, UsageError, parseChoice, parseCommand, parseDuration, parseInteger } from './options.js';
import { OUTCOME_COLUMNS, outcomeCells, printReport, table } from './output.js';
import { Progress, bar, seconds } from './progress.js';

export const LOAD_USAGE = `Usage: graceful-listener load <url> [options]

Drives the server at <url> (http: or https:) with concurrent clients, runs
--during-cmd halfway, and reports every outcome: responses, RSTs
(ECONNRESET), refusals, clean closes, TLS errors and timeouts. Writes
report.json and timeline.svg. Only loopback targets unless --allow-remote.

Options:
  --concurrency N              concurrent clients (default 16)
  --duration SECONDS           how long requests start (default 10)
  --connection new|keep-alive  fresh connection per request, or kept (default new)
  --h2                         HTTP/2 (h2 over https:, h2c over http:)
  --during-cmd "<command>"     shell command run once, halfway; its output
                               goes to stderr
  --during-at SECONDS          when to run it (default: half the duration)
  --request-timeout SECONDS    per request (default 10)
  --ca FILE                    PEM CA to verify https with (default: no
                               verification, as wrk and h2load)
  --fail-on KINDS              exit 1 if any of these happened, e.g.
                               reset,closed (kinds: ${ERROR_KINDS.join(', ')})
  --allow-remote               the target is not loopback and you own it
  --out DIR                    where to write the report (default: a new
                               directory under the system's temp dir)
  --json                       print the report as JSON on stdout
  -h, --help`;

interface DuringCommandResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
}

function runCommand(command: string, signal: AbortSignal): Promise<DuringCommandResult> {
  return new Promise((resolve, reject) => {
    // stdout goes to our stderr: our stdout is the report.
    const child = spawn(command, { shell: true, stdio: ['ignore', 2, 2], signal });
    child.on('error', (error) => {
      if ((error as { name?: string }).name !== 'AbortError') reject(error);
    });
    child.on('exit', (exitCode, exitSignal) => resolve({ command, exitCode, signal: exitSignal }));
  });
}

export type LoadCommandReport = ToolReport<'graceful-listener load', { load: LoadReport<DuringCommandResult | undefined> }>;

function formatLoad({ load }: LoadCommandReport): string[] {
  const status = Object.entries(load.status)
    .map(([code, count]) => `${count}×${code}`)
    .join(' ');
  const lines = [
    `graceful-listener load: ${load.target.url} (${load.protocol}, ${load.connection} connections), ` +
      `${load.concurrency} clients for ${seconds(load.durationMs)}`,
    '',
    table([...OUTCOME_COLUMNS, { title: 'status' }], [[...outcomeCells(load), status]]),
    '',
  ];
  const errors = Object.entries(load.errors);
  if (errors.length > 0) {
    lines.push('errors by code:');
    for (const [code, count] of errors) {
      lines.push(`  ${String(count).padStart(7)}  ${code}${ERROR_CODES[code] !== undefined ? ` (${ERROR_CODES[code]})` : ''}`);
    }
    lines.push('');
  }
  if (load.during !== undefined) {
    const result = load.during.result;
    lines.push(
      `--during-cmd ran at ${seconds(load.during.atMs)}, finished at ${seconds(load.during.settledAtMs)}` +
        (result !== undefined ? `, exit ${result.exitCode ?? result.signal}` : ''),
      '',
    );
  }
  return lines;
}

export async function loadCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    LOAD_USAGE,
    {
      concurrency: { type: 'string', default: '16' },
      duration: { type: 'string', default: '10' },
      connection: { type: 'string', default: 'new' },
      h2: { type: 'boolean', default: false },
      'during-cmd': { type: 'string' },
      'during-at': { type: 'string' },
      'request-timeout': { type: 'string', default: '10' },
      ca: { type: 'string' },
      'fail-on': { type: 'string' },
      'allow-remote': { type: 'boolean', default: false },
      ...REPORT_FLAGS,
    },
    { positionals: true },
  );
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError('load needs exactly one <url>');
  const duration = parseDuration('duration', values.duration, { min: 100 });
  const duringAt = values['during-at'] === undefined ? undefined : parseDuration('during-at', values['during-at'], { min: 0 });
  if (duringAt !== undefined && duringAt > duration) throw new UsageError('--during-at must not be after --duration');
  const failOn = (values['fail-on'] ?? '')
    .split(',')
    .filter((kind) => kind !== '')
    .map((kind) => parseChoice('fail-on', kind, ERROR_KINDS));
  const ca = values.ca === undefined ? undefined : fs.readFileSync(values.ca);
  const command = values['during-cmd'];
  const startedAt = new Date().toISOString();
  const progress = new Progress(process.stderr);
  const abort = new AbortController();
  const commandAbort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  let load: LoadReport<DuringCommandResult | undefined>;
  try {
    load = await runUnderLoad<DuringCommandResult | undefined>({
      url: positionals[0]!,
      concurrency: parseInteger('concurrency', values.concurrency, 1, 10_000),
      duration,
      connection: parseChoice('connection', values.connection, ['new', 'keep-alive'] as const),
      protocol: values.h2 ? 'h2' : 'http1',
      requestTimeout: parseDuration('request-timeout', values['request-timeout'], { min: 1, max: 600_000 }),
      allowRemote: values['allow-remote'],
      ...(ca !== undefined ? { ca } : {}),
      ...(duringAt !== undefined ? { duringAt } : {}),
      ...(command !== undefined
        ? {
            during: async (context) => {
              progress.log(`running --during-cmd: ${command}`);
              const result = await runCommand(command, commandAbort.signal);
              context.mark('command done');
              return result;
            },
          }
        : {}),
      signal: abort.signal,
      onProgress: (p) => {
        progress.status(
          `${bar(p.elapsedMs / p.durationMs)} ${seconds(Math.min(p.elapsedMs, p.durationMs))}/${seconds(p.durationMs)}` +
            ` · ${headlineText(p)}` +
            ` · ${p.inFlight} in flight${p.during === 'running' ? ' · --during-cmd running' : ''}`,
        );
      },
    });
  } finally {
    commandAbort.abort();
    process.removeListener('SIGINT', onSigint);
    progress.clear();
  }
  const report: LoadCommandReport = writeReport(
    { tool: 'graceful-listener load', startedAt, out: values.out },
    { load },
    {
      heading: `graceful-listener load · ${load.target.url}`,
      panels: [{ title: `${load.protocol} · ${load.connection} connections · ${load.concurrency} clients`, report: load }],
    },
  );
  printReport(report, values.json, () => formatLoad(report));
  let code = 0;
  const failed = failOn.filter((kind) => load.kinds[kind] > 0);
  if (failed.length > 0) {
    process.stderr.write(`--fail-on: ${failed.map((kind) => `${load.kinds[kind]} ${kind}`).join(', ')}\n`);
    code = 1;
  }
  const during = load.during?.result;
  if (during !== undefined && during.exitCode !== 0) {
    process.stderr.write(`--during-cmd exited with ${during.exitCode ?? during.signal}\n`);
    code = 1;
  }
  return code;
}
