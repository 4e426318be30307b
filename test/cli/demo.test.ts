// `npm run demo -- --duration 2 --json`, through the built entry: it completes,
// and graceful-listener resets no client. The server.close() figures are
// reported beside ours but not asserted on (they are > 0 most of the time).
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { DemoReport } from '../../src/cli/demo.js';
import { runCli, tempDir } from './run.js';

const output = tempDir();
afterAll(() => output.remove());

describe('graceful-listener demo', () => {
  it('runs both closes under load and reports 0 resets for listener.close()', async () => {
    const result = await runCli(['demo', '--duration', '2', '--json', '--out', output.dir], 120_000);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as DemoReport;
    expect(report.summary.map((row) => `${row.shutdown} ${row.connection}`)).toEqual([
      'server.close() new',
      'listener.close() new',
      'server.close() keep-alive',
      'listener.close() keep-alive',
    ]);
    for (const row of report.summary) {
      expect(row.served).toBeGreaterThan(0);
      expect(typeof row.ECONNRESET).toBe('number');
      expect(row.pendingAtClose).not.toBeNull();
    }
    for (const row of report.summary.filter((r) => r.shutdown === 'listener.close()')) {
      expect(row.ECONNRESET).toBe(0);
    }
    for (const run of report.runs.filter((r) => r.shutdown === 'listener.close()')) {
      expect(run.closeReport).not.toBeNull();
      expect(run.load.kinds.reset).toBe(0);
    }
    expect(fs.existsSync(report.files.json)).toBe(true);
    expect(fs.readFileSync(report.files.svg, 'utf8')).toContain('listener.close()');
    // Progress goes to stderr, one line as each run starts and ends.
    expect(result.stderr).toContain('[4/4] listener.close()');
  });

  it('--help lists the flags', async () => {
    const help = await runCli(['demo', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--concurrency', '--duration', '--protocol', '--json', '--scenario']) expect(help.stdout).toContain(flag);
  });
});
