// The one report writer of the CLI's commands: report.json (the tool, its
// version, the body, where the files are) and timeline.svg, side by side.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { timelineSvg, type TimelinePanel } from './timeline.js';

export interface ReportFiles {
  directory: string;
  json: string;
  svg: string;
}

export type ToolReport<Tool extends string, Body extends object> = {
  tool: Tool;
  version: string;
  node: string;
  startedAt: string;
} & Body & { files: ReportFiles };

export function packageVersion(): string {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      version?: string;
    };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** `out` (created if missing), or a new directory under the system's temp dir. */
function outputDirectory(out: string | undefined, prefix: string): string {
  if (out !== undefined) {
    fs.mkdirSync(out, { recursive: true });
    return path.resolve(out);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${stamp}-`));
}

/**
 * Writes `body` as report.json, under the tool's name and version, and the
 * timeline of `panels` as timeline.svg; returns the report as written.
 */
export function writeReport<Tool extends string, Body extends object>(
  head: { tool: Tool; startedAt: string; out: string | undefined },
  body: Body,
  timeline: { heading: string; panels: TimelinePanel[] },
): ToolReport<Tool, Body> {
  const directory = outputDirectory(head.out, head.tool.replaceAll(' ', '-'));
  const files = { directory, json: path.join(directory, 'report.json'), svg: path.join(directory, 'timeline.svg') };
  const report = { tool: head.tool, version: packageVersion(), node: process.version, startedAt: head.startedAt, ...body, files };
  fs.writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(files.svg, timelineSvg(timeline.heading, timeline.panels));
  return report;
}
