// `graceful-listener demo --scenario restart` with short flags, through the
// built entry: both restart methods run under the same load; the handover
// fails no request, close-then-listen is refused around its restarts (the
// demo proves its own teeth), and report.json and timeline.svg carry the
// per-restart counts and marks.
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { RestartDemoReport } from '../../src/cli/demo-restart.js';
import { runCli, tempDir } from './run.js';

const output = tempDir();
afterAll(() => output.remove());

const short = (restarts: number): string[] => [
  'demo', '--scenario', 'restart', '--restarts', String(restarts), '--every', '0.3', '--concurrency', '8', '--connection', 'new',
];

describe('graceful-listener demo --scenario restart', () => {
  it('restarts close-then-listen and with a handover; the handover fails no request', async () => {
    const result = await runCli([...short(3), '--json', '--out', output.dir], 120_000);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as RestartDemoReport;
    expect(report.scenario).toBe('restart');
    expect(report.summary.map((row) => `${row.method} ${row.connection}`)).toEqual(['close-then-listen new', 'handover new']);
    const [plain, handover] = report.summary;
    expect(handover!.served).toBeGreaterThan(0);
    expect(handover!.ECONNRESET + handover!.ECONNREFUSED + handover!.otherErrors).toBe(0);
    expect(handover!.failedPerRestart).toEqual([0, 0, 0]);
    expect(handover!.maxRefusalWindowMs).toBe(0);
    expect(plain!.ECONNRESET).toBe(0);
    expect(plain!.ECONNREFUSED).toBeGreaterThan(0);
    expect(plain!.failedPerRestart).toHaveLength(3);
    for (const run of report.runs) {
      expect(run.load.restarts).toHaveLength(3);
      expect(run.load.processes).toHaveLength(4);
      expect(run.load.marks.map((mark) => mark.label)).toEqual(['restart 1', 'restart 2', 'restart 3']);
    }
    expect(JSON.parse(fs.readFileSync(report.files.json, 'utf8'))).toEqual(report);
    const svg = fs.readFileSync(report.files.svg, 'utf8');
    expect(svg).toContain('handover');
    expect(svg).toContain('restart 3');
  });

  it('prints a table per method and per restart', async () => {
    const result = await runCli([...short(1), '--out', output.dir], 120_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^listener\.close\(\) → listen\(\) +new TLS conn\.\/request/m);
    expect(result.stdout).toMatch(/^handover +new TLS conn\.\/request/m);
    expect(result.stdout).toContain('failed requests per restart');
    expect(result.stdout).toContain('timeline: ');
    expect(result.stderr).toContain('[2/2] handover');
  });

  it('--help documents the scenario; flags of the other scenario are usage errors', async () => {
    const help = await runCli(['demo', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--scenario close|restart', '--restarts', '--every']) expect(help.stdout).toContain(flag);
    const wrong = await runCli(['demo', '--scenario', 'restart', '--duration', '2']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('--duration is for --scenario close');
    const unknown = await runCli(['demo', '--scenario', 'reload']);
    expect(unknown.code).toBe(2);
  });
});
