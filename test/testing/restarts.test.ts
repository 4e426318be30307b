// The kit's restart scenario, runRestarts: a server restarted under load,
// each outcome counted in the window of the restart it settled in. Short
// runs against real server processes (test/helpers/restart-child.mjs) and an
// in-process replace(); the kit's own failures (a process that does not
// start, one that does not exit, a restart that throws) end the run with
// ERR_RESTART_FAILED and leave no process behind.
import fs from 'node:fs';
import https from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../../src/index.js';
import { LoadError, runRestarts, type RestartReport, type WindowCounts } from '../../src/testing/index.js';
import { stablePort } from '../helpers/kit.js';
import { RestartDir } from '../helpers/restarts.js';
import { cert } from './servers.js';

let work: RestartDir | undefined;
afterEach(() => {
  work?.dispose();
  work = undefined;
});

function sum(report: RestartReport<unknown>, key: keyof Omit<WindowCounts, 'kinds'>): number {
  return report.restarts.reduce((total, window) => total + window[key], report.before[key]);
}

/** Every request is in exactly one window, and the windows add up to the totals. */
function expectWindowsAddUp(report: RestartReport<unknown>): void {
  expect(sum(report, 'requests')).toBe(report.requests);
  expect(sum(report, 'served')).toBe(report.responses);
  expect(sum(report, 'reset')).toBe(report.kinds.reset);
  expect(sum(report, 'refused')).toBe(report.kinds.refused);
  expect(sum(report, 'failed')).toBe(report.requests - report.responses);
  for (const window of [report.before, ...report.restarts]) {
    expect(window.failed).toBe(window.reset + window.refused + window.other);
  }
}

const PLAIN_HTTP_SERVER = `
const http = require('node:http');
const server = http.createServer((request, response) => response.end('ok'));
server.listen(Number(process.argv[1]), '127.0.0.1', () => {
  console.log('not a protocol line');
  console.log(JSON.stringify({ event: 'listening', port: server.address().port }));
});
process.on('SIGTERM', () => {});
`;

describe('runRestarts with a server process per restart', () => {
  it('5 restarts with a handover: 0 failed, each restart marked and in its own window', { timeout: 60_000 }, async () => {
    work = new RestartDir();
    const report = await runRestarts({
      command: work.command('handover', await stablePort()),
      mode: 'handover',
      url: work.url,
      ca: work.cert,
      restarts: 5,
      every: 300,
      concurrency: 8,
    });
    expect(report.stoppedBy).toBe('restarts');
    expect(report.mode).toBe('handover');
    expect(report.requests).toBeGreaterThan(0);
    expect(report.responses).toBe(report.requests);
    expect(report.restarts.map((window) => window.index)).toEqual([1, 2, 3, 4, 5]);
    expect(report.marks.map((mark) => mark.label)).toEqual(['restart 1', 'restart 2', 'restart 3', 'restart 4', 'restart 5']);
    for (const [i, window] of report.restarts.entries()) {
      expect(window.failed).toBe(0);
      expect(window.refusalWindowMs).toBe(0);
      expect(window.served).toBeGreaterThan(0);
      expect(window.atMs).toBe(report.marks[i]!.atMs);
      expect(window.doneMs).toBeGreaterThanOrEqual(window.atMs);
      // The result is the new process's pid.
      expect(window.result).toBe(report.processes![i + 1]!.pid);
    }
    expectWindowsAddUp(report);
    const processes = report.processes!;
    expect(processes).toHaveLength(6);
    for (const server of processes) {
      expect(server.exitCode).toBe(0);
      expect(server.killed).toBe(false);
      expect(server.events[0]).toMatchObject({ event: 'listening', port: report.target.port });
    }
    // Nobody signalled the old ones: they retired by themselves.
    expect(processes.slice(0, -1).every((server) => server.signalledAtMs === null)).toBe(true);
  });

  it('5 restarts close-then-listen: clients are refused around each restart, and counted there', { timeout: 60_000 }, async () => {
    work = new RestartDir();
    const report = await runRestarts({
      command: work.command('plain', await stablePort()),
      mode: 'close-then-listen',
      url: work.url,
      ca: work.cert,
      restarts: 5,
      every: 300,
      concurrency: 8,
      backoff: 5,
    });
    expect(report.kinds.refused).toBeGreaterThan(0);
    expect(report.kinds.reset).toBe(0);
    expect(report.before.failed).toBe(0);
    expect(report.restarts.filter((window) => window.refused > 0).length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...report.restarts.map((window) => window.refusalWindowMs))).toBeGreaterThan(0);
    expectWindowsAddUp(report);
    // Each process was stopped before the next one started.
    const processes = report.processes!;
    for (let i = 1; i < processes.length; i++) {
      expect(processes[i]!.startedAtMs).toBeGreaterThanOrEqual(processes[i - 1]!.exitedAtMs!);
    }
  });

  it("listen-then-close signals the old process only once the new one listens", { timeout: 60_000 }, async () => {
    work = new RestartDir();
    const report = await runRestarts({
      command: work.command('handover', await stablePort()),
      mode: 'listen-then-close',
      url: work.url,
      ca: work.cert,
      restarts: 2,
      every: 300,
      concurrency: 4,
    });
    expect(report.responses).toBe(report.requests);
    const processes = report.processes!;
    for (let i = 0; i < processes.length - 1; i++) {
      expect(processes[i]!.signalledAtMs).not.toBeNull();
      expect(processes[i]!.signalledAtMs!).toBeGreaterThanOrEqual(processes[i + 1]!.listeningAtMs!);
    }
  });

  it('a process that ignores the stop signal is killed at exitTimeout, and the run goes on', { timeout: 30_000 }, async () => {
    const report = await runRestarts({
      command: ({ port }) => [process.execPath, '-e', PLAIN_HTTP_SERVER, String(port ?? 0)],
      mode: 'close-then-listen',
      restarts: 1,
      every: 200,
      concurrency: 2,
      exitTimeout: 300,
    });
    expect(report.target.url).toBe(`http://127.0.0.1:${report.target.port}/`);
    expect(report.processes!.map((server) => server.killed)).toEqual([true, true]);
    expect(report.processes!.map((server) => server.signal)).toEqual(['SIGKILL', 'SIGKILL']);
    expect(report.restarts).toHaveLength(1);
    expect(report.responses).toBeGreaterThan(0);
  });
});

describe('runRestarts with a restart callback', () => {
  it('listener.replace() every 50 ms in this process: 0 failed', { timeout: 30_000 }, async () => {
    const make = (generation: number) => https.createServer(cert(), (_request, response) => response.end(`${generation}\n`));
    const listener = await listen(make(0), { host: '127.0.0.1', port: 0 });
    try {
      const report = await runRestarts({
        url: `https://127.0.0.1:${listener.address().port}/`,
        restarts: 5,
        every: 50,
        concurrency: 4,
        connection: 'keep-alive',
        restart: ({ index }) => {
          void listener.replace(make(index));
          return index * 10;
        },
      });
      expect(report.mode).toBe('callback');
      expect(report.processes).toBeUndefined();
      expect(report.restarts.map((window) => window.result)).toEqual([10, 20, 30, 40, 50]);
      expect(report.responses).toBe(report.requests);
      expectWindowsAddUp(report);
    } finally {
      await listener.close({ timeout: 0, forceTimeout: 0 });
    }
  });

  it('a restart that throws ends the run with ERR_RESTART_FAILED, the report on the error', { timeout: 30_000 }, async () => {
    const server = https.createServer(cert(), (_request, response) => response.end('ok\n'));
    const listener = await listen(server, { host: '127.0.0.1', port: 0 });
    try {
      const failed = await runRestarts({
        url: `https://127.0.0.1:${listener.address().port}/`,
        restarts: 5,
        every: 50,
        concurrency: 2,
        restart: ({ index }) => {
          if (index === 2) throw new Error('the new configuration does not parse');
        },
      }).catch((error: unknown) => error);
      expect(failed).toBeInstanceOf(LoadError);
      expect((failed as LoadError).code).toBe('ERR_RESTART_FAILED');
      expect((failed as Error).cause).toMatchObject({ message: 'the new configuration does not parse' });
      const report = (failed as LoadError).report as RestartReport;
      expect(report.restarts).toHaveLength(2);
      expect(report.requests).toBeGreaterThan(0);
    } finally {
      await listener.close({ timeout: 0, forceTimeout: 0 });
    }
  });
});

describe('runRestarts refuses what it cannot run', () => {
  it('a first process that exits before listening: ERR_RESTART_FAILED, with its stderr', async () => {
    const failed = await runRestarts({
      command: [process.execPath, '-e', 'console.error("no config"); process.exit(3)'],
      mode: 'handover',
    }).catch((error: unknown) => error);
    expect((failed as LoadError).code).toBe('ERR_RESTART_FAILED');
    expect((failed as Error).message).toContain('no config');
  });

  it('a process that never says it listens is killed at startTimeout', async () => {
    work = new RestartDir();
    const pidFile = `${work.dir}/pid`;
    const failed = await runRestarts({
      command: [process.execPath, '-e', 'require("node:fs").writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000)', pidFile],
      mode: 'close-then-listen',
      startTimeout: 500,
    }).catch((error: unknown) => error);
    expect((failed as LoadError).code).toBe('ERR_RESTART_FAILED');
    expect((failed as Error).message).toContain('within 500 ms');
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  it('needs either a command or a restart callback, not both', async () => {
    await expect(runRestarts({ mode: 'handover' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(
      runRestarts({ command: ['true'], mode: 'handover', url: 'http://127.0.0.1:1/', restart: () => {} } as never),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(runRestarts({ command: ['true'], mode: 'reload' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(runRestarts({ url: 'http://10.0.0.1/', restart: () => {} })).rejects.toMatchObject({ code: 'ERR_LOAD_REMOTE_TARGET' });
  });
});
