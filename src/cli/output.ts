// What the commands print on stdout: plain-text tables, and the report as
// JSON (--json) or as text followed by where its files are.
import type { LoadReport } from '../testing/index.js';
import { headline } from '../testing/outcome.js';
import type { ReportFiles } from '../testing/report.js';

interface Column {
  title: string;
  align?: 'left' | 'right';
}

/** A plain-text table: a header, a rule, the rows; cells padded to the widest. */
export function table(columns: Column[], rows: string[][]): string {
  const widths = columns.map((column, i) => Math.max(column.title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((column) => column.title)),
    widths.map((width) => '─'.repeat(width)).join('  '),
    ...rows.map(line),
  ].join('\n');
}

/** The columns every command's table has: what the clients saw. */
export const OUTCOME_COLUMNS: Column[] = [
  { title: 'served', align: 'right' },
  { title: 'ECONNRESET', align: 'right' },
  { title: 'ECONNREFUSED', align: 'right' },
  { title: 'other', align: 'right' },
  { title: 'p50 ms', align: 'right' },
  { title: 'p99 ms', align: 'right' },
];

export function outcomeCells(load: Pick<LoadReport<unknown>, 'requests' | 'responses' | 'kinds' | 'latency'>): string[] {
  const { served, reset, refused, other } = headline(load);
  return [String(served), String(reset), String(refused), String(other), load.latency.p50.toFixed(1), load.latency.p99.toFixed(1)];
}

/** The report on stdout: JSON, or `lines` and the paths of its files. */
export function printReport(report: { files: ReportFiles }, json: boolean, lines: () => string[]): void {
  const text = json
    ? JSON.stringify(report, null, 2)
    : [...lines(), `report:   ${report.files.json}`, `timeline: ${report.files.svg}`].join('\n');
  process.stdout.write(`${text}\n`);
}

/** The outcome fields every demo row's JSON carries. */
export interface OutcomeSummary {
  served: number;
  ECONNRESET: number;
  ECONNREFUSED: number;
  otherErrors: number;
  p50Ms: number;
  p99Ms: number;
}

export function outcomeSummary(load: Pick<LoadReport<unknown>, 'requests' | 'responses' | 'kinds' | 'latency'>): OutcomeSummary {
  const { served, reset, refused, other } = headline(load);
  return { served, ECONNRESET: reset, ECONNREFUSED: refused, otherErrors: other, p50Ms: load.latency.p50, p99Ms: load.latency.p99 };
}
