// The timeline as a standalone SVG: one panel per run, on shared scales so
// that runs compare at a glance. Responses per bucket as a step line, failed
// requests as stacked bars by kind, the accept-queue depth on its own axis,
// and the instants that `during()` marked.
import { headlineText, type ErrorKind } from './outcome.js';
import type { Measurements, TimelineBucket } from './recorder.js';

export interface TimelinePanel {
  title: string;
  /** A load's report: runUnderLoad's or runRestarts'. */
  report: Measurements & { elapsedMs: number };
  /** The `samples` key holding the accept-queue depth, if any. */
  queueKey?: string;
}

const WIDTH = 960;
const LEFT = 56;
const RIGHT = 56;
const PLOT_HEIGHT = 150;
const PANEL_HEIGHT = PLOT_HEIGHT + 64;
const HEADER = 56;

const COLORS = {
  ok: '#2563eb',
  queue: '#16a34a',
  httpError: '#0891b2',
  reset: '#dc2626',
  refused: '#9ca3af',
  closed: '#f59e0b',
  retryable: '#8b5cf6',
  tls: '#92400e',
  timeout: '#111827',
  other: '#ec4899',
} as const;

const STACK: readonly (ErrorKind | 'httpError')[] = ['reset', 'closed', 'tls', 'timeout', 'other', 'retryable', 'httpError', 'refused'];

const LABELS: Record<(typeof STACK)[number], string> = {
  reset: 'ECONNRESET (RST)',
  refused: 'ECONNREFUSED',
  closed: 'closed before answer',
  retryable: 'h2 refused stream',
  tls: 'TLS error',
  timeout: 'timeout',
  other: 'other error',
  httpError: 'HTTP ≥ 400',
};

function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function niceStep(range: number, ticks: number): number {
  const raw = Math.max(range, 1e-9) / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * magnitude) return m * magnitude;
  return 10 * magnitude;
}

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const step = niceStep(value, 4);
  return Math.ceil(value / step) * step;
}

function failed(bucket: TimelineBucket): number {
  return STACK.reduce((sum, kind) => sum + bucket[kind], 0);
}

const n = (value: number): string => (Math.round(value * 10) / 10).toString();

export function timelineSvg(heading: string, panels: TimelinePanel[]): string {
  const bucketMs = panels[0]?.report.timeline.bucketMs ?? 100;
  const endMs = Math.max(
    1000,
    ...panels.map((p) => Math.max(p.report.elapsedMs, p.report.timeline.buckets.length * bucketMs)),
    ...panels.flatMap((p) => p.report.marks.map((m) => m.atMs + bucketMs)),
  );
  const yMax = niceMax(
    Math.max(0, ...panels.flatMap((p) => p.report.timeline.buckets.map((b) => Math.max(b.ok, failed(b))))),
  );
  const qMax = niceMax(
    Math.max(
      0,
      ...panels.flatMap((p) =>
        p.queueKey === undefined ? [] : p.report.timeline.buckets.map((b) => b.samples?.[p.queueKey!] ?? 0),
      ),
    ),
  );
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (ms: number): number => LEFT + (ms / endMs) * plotWidth;
  // Legend rows first: the header grows with them.
  const legend: [string, string, 'line' | 'box'][] = [
    [`responses / ${bucketMs} ms`, COLORS.ok, 'line'],
    ['accept queue (right axis)', COLORS.queue, 'line'],
    ...STACK.map((kind): [string, string, 'box'] => [LABELS[kind], COLORS[kind], 'box']),
  ];
  const legendItems: string[] = [];
  let lx = LEFT;
  let ly = 42;
  for (const [label, color, shape] of legend) {
    const width = 26 + label.length * 6.2;
    if (lx + width > WIDTH - RIGHT && lx > LEFT) {
      lx = LEFT;
      ly += 16;
    }
    legendItems.push(
      shape === 'line'
        ? `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 14}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`
        : `<rect x="${lx + 2}" y="${ly - 9}" width="10" height="10" fill="${color}"/>`,
      `<text x="${lx + 18}" y="${ly}">${escape(label)}</text>`,
    );
    lx += width;
  }
  const header = ly + HEADER - 42;
  const height = header + panels.length * PANEL_HEIGHT + 8;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="20" font-size="14" font-weight="bold">${escape(heading)}</text>`,
    ...legendItems,
  );

  panels.forEach((panel, index) => {
    const top = header + index * PANEL_HEIGHT + 28;
    const bottom = top + PLOT_HEIGHT;
    const y = (count: number): number => bottom - (count / yMax) * PLOT_HEIGHT;
    const q = (depth: number): number => bottom - (depth / qMax) * PLOT_HEIGHT;
    const { report } = panel;
    out.push(
      `<g>`,
      `<text x="${LEFT}" y="${top - 10}" font-size="12" font-weight="bold">${escape(panel.title)}</text>`,
      `<rect x="${LEFT}" y="${top}" width="${plotWidth}" height="${PLOT_HEIGHT}" fill="#f8fafc" stroke="#cbd5e1"/>`,
    );
    // Grid and axes.
    const yStep = niceStep(yMax, 4);
    for (let v = 0; v <= yMax + 1e-9; v += yStep) {
      out.push(
        `<line x1="${LEFT}" y1="${n(y(v))}" x2="${LEFT + plotWidth}" y2="${n(y(v))}" stroke="#e2e8f0"/>`,
        `<text x="${LEFT - 4}" y="${n(y(v) + 4)}" text-anchor="end" fill="#334155">${n(v)}</text>`,
      );
    }
    if (panel.queueKey !== undefined) {
      const qStep = niceStep(qMax, 4);
      for (let v = 0; v <= qMax + 1e-9; v += qStep) {
        out.push(`<text x="${LEFT + plotWidth + 4}" y="${n(q(v) + 4)}" fill="${COLORS.queue}">${n(v)}</text>`);
      }
    }
    const xStep = niceStep(endMs, 10);
    for (let t = 0; t <= endMs + 1e-9; t += xStep) {
      out.push(
        `<line x1="${n(x(t))}" y1="${bottom}" x2="${n(x(t))}" y2="${bottom + 4}" stroke="#64748b"/>`,
        `<text x="${n(x(t))}" y="${bottom + 16}" text-anchor="middle" fill="#334155">${n(t / 1000)} s</text>`,
      );
    }
    // Failed requests: stacked bars per bucket.
    const barWidth = Math.max(1, (bucketMs / endMs) * plotWidth - 0.5);
    for (const bucket of report.timeline.buckets) {
      let base = 0;
      for (const kind of STACK) {
        const count = bucket[kind];
        if (count === 0) continue;
        out.push(
          `<rect x="${n(x(bucket.t))}" y="${n(y(base + count))}" width="${n(barWidth)}" height="${n(y(base) - y(base + count))}" fill="${COLORS[kind]}"><title>${count} ${escape(LABELS[kind])} at ${n(bucket.t / 1000)} s</title></rect>`,
        );
        base += count;
      }
    }
    // Responses: a step line.
    const steps = report.timeline.buckets.map((b) => `L${n(x(b.t))},${n(y(b.ok))}H${n(x(b.t + bucketMs))}`).join('');
    if (steps !== '') {
      out.push(`<path d="M${n(x(0))},${n(y(0))}${steps}" fill="none" stroke="${COLORS.ok}" stroke-width="1.5"/>`);
    }
    // Accept-queue depth: segments where samples exist.
    if (panel.queueKey !== undefined) {
      let d = '';
      let open = false;
      for (const bucket of report.timeline.buckets) {
        const depth = bucket.samples?.[panel.queueKey];
        if (depth === undefined) {
          open = false;
          continue;
        }
        d += `${open ? 'L' : 'M'}${n(x(bucket.t + bucketMs / 2))},${n(q(depth))}`;
        open = true;
      }
      if (d !== '') out.push(`<path d="${d}" fill="none" stroke="${COLORS.queue}" stroke-width="1.5"/>`);
    }
    // Marks: the close and when it completed.
    report.marks.forEach((mark, i) => {
      const mx = n(x(mark.atMs));
      const color = i === 0 ? '#b91c1c' : '#475569';
      out.push(
        `<line x1="${mx}" y1="${top}" x2="${mx}" y2="${bottom}" stroke="${color}" stroke-dasharray="4 3"/>`,
        `<text x="${n(x(mark.atMs) + 3)}" y="${top + 12 + (i % 3) * 12}" fill="${color}">${escape(mark.label)} ${n(mark.atMs / 1000)} s</text>`,
      );
    });
    const summary = `${headlineText(report)} · p50 ${report.latency.p50} ms · p99 ${report.latency.p99} ms`;
    out.push(
      `<text x="${LEFT + plotWidth}" y="${top - 10}" text-anchor="end" fill="#334155">${escape(summary)}</text>`,
      `</g>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
