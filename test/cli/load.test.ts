// `graceful-listener load` end to end: a child process drives a server in
// this process for a second and reports what it saw.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadCommandReport } from '../../src/cli/load.js';
import { scriptedServer, statusServer, type TestServer } from '../testing/servers.js';
import { runCli, tempDir } from './run.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});
async function server(made: Promise<TestServer>): Promise<TestServer> {
  const s = await made;
  cleanups.push(() => s.close());
  return s;
}
function out(): string {
  const { dir, remove } = tempDir();
  cleanups.push(remove);
  return dir;
}

describe('graceful-listener load', () => {
  it('drives a server, runs --during-cmd halfway, prints JSON and writes report.json and timeline.svg', async () => {
    const target = await server(statusServer(0));
    const dir = out();
    const result = await runCli([
      'load', target.url, '--duration', '1', '--concurrency', '4', '--connection', 'keep-alive',
      '--during-cmd', 'echo reconfiguring', '--json', '--out', dir,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as LoadCommandReport;
    expect(report.load.responses).toBeGreaterThan(0);
    expect(report.load.kinds.reset).toBe(0);
    expect(report.load.during?.result).toMatchObject({ command: 'echo reconfiguring', exitCode: 0 });
    expect(result.stderr).toContain('reconfiguring');
    expect(report.files.directory).toBe(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'))).toEqual(report);
    const svg = fs.readFileSync(path.join(dir, 'timeline.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('prints a table by default, and --fail-on reset fails when a server reset clients', async () => {
    const target = await server(scriptedServer({ resets: 3 }));
    const result = await runCli(['load', target.url, '--duration', '0.5', '--concurrency', '2', '--fail-on', 'reset', '--out', out()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--fail-on: 3 reset');
    expect(result.stdout).toMatch(/served\s+ECONNRESET\s+ECONNREFUSED/);
    expect(result.stdout).toMatch(/^\s+3\s+ECONNRESET$/m);
    expect(result.stdout).toContain('timeline: ');
  });

  it('refuses a target that is not loopback, without sending anything', async () => {
    const dir = out();
    const result = await runCli(['load', 'http://192.0.2.1/', '--duration', '1', '--out', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('not a loopback address');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('explains usage mistakes with exit code 2, and --help with 0', async () => {
    expect((await runCli(['load'])).code).toBe(2);
    expect((await runCli(['load', 'http://127.0.0.1:1/', '--connection', 'sometimes'])).code).toBe(2);
    expect((await runCli(['load', 'http://127.0.0.1:1/', '--bogus'])).code).toBe(2);
    expect((await runCli(['nonsense'])).code).toBe(2);
    const help = await runCli(['load', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--during-cmd');
  });
});
