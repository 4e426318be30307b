// closeOnSignals() in a real child process getting real signals: an http
// server and a raw Listener closed together. SIGTERM once drains them and
// exits 0, the clients getting their full responses; a second SIGTERM
// forces the drain (exit 143); SIGINT; a hung request with a short timeout
// (exit 1); exit:false only resolves; a listener closed before the signal;
// a pre-stop phase that serves normally while /readyz says 503; STOPPING=1
// once. In-process: the handlers one handle installs and dispose() removes,
// shutdown() without a signal, bad input.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { EXIT_TIMED_OUT, Readiness, closeOnSignals, listen, type CloseReport, type ShutdownReport } from '../../src/index.js';
import { EventChild, Opened, rawGet, request, requireDist, type RawClient } from '../helpers/kit.js';
import type { NativeBinding } from '../../src/core/native.js';
import { notifyStopping } from '../../src/reconfigure/systemd.js';
import { notifyReceiver } from '../helpers/python.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const CHILD = path.join(__dirname, '..', 'helpers', 'signals-child.mjs');

interface ChildEvent {
  event: 'listening' | 'request' | 'draining' | 'raw-closed' | 'done' | 'uncaught';
  port?: number;
  rawPort?: number | null;
  url?: string;
  which?: string;
  report?: ShutdownReport | CloseReport;
  handlers?: number;
  message?: string;
}

type Child = EventChild<ChildEvent> & { port: number; rawPort: number | null };

async function start(options: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<Child> {
  const child = new EventChild<ChildEvent>(
    opened.child(spawn(process.execPath, [CHILD, requireDist(), JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'pipe'], env })),
  );
  const { port, rawPort } = await child.first('listening');
  return Object.assign(child, { port: port!, rawPort: rawPort! });
}

async function done(child: Child): Promise<ShutdownReport> {
  return (await child.first('done')).report as ShutdownReport;
}

/** A client whose request to /hold is in flight until the child is told to release it. */
async function held(child: Child): Promise<RawClient> {
  const client = opened.raw(child.port);
  client.socket.write(rawGet('/hold'));
  await child.next((event) => event.event === 'request' && event.url === '/hold', 'request for /hold');
  return client;
}

/** A raw client whose echo came back: connected and served by the raw listener. */
async function echoing(child: Child): Promise<RawClient> {
  const client = opened.raw(child.rawPort!);
  client.socket.write('ping');
  await client.until((c) => c.data === 'ping', 'the echo');
  return client;
}

const bothDraining = (child: Child): Promise<unknown> =>
  Promise.all([child.next((e) => e.event === 'draining' && e.which === 'http', "http 'draining'"), child.next((e) => e.event === 'draining' && e.which === 'raw', "raw 'draining'")]);

describe('closeOnSignals() in a child process', () => {
  test('SIGTERM once: both listeners drain in parallel, the held request gets its full response, exit 0', async () => {
    const child = await start({});
    const inFlight = await held(child);
    const raw = await echoing(child);
    child.process.kill('SIGTERM');
    await bothDraining(child);
    // The raw listener's connection was ended by its drain while the http one still waits.
    await raw.finished();
    expect(child.process.exitCode).toBeNull();
    child.process.stdin!.write('release\n');
    expect(await inFlight.response()).toMatchObject({ status: 200, body: 'released', headers: { connection: 'close' } });
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    const report = await done(child);
    expect(report).toMatchObject({ signal: 'SIGTERM', forced: false, timedOut: false, exitCode: 0 });
    expect(report.reports).toHaveLength(2);
    expect(report.reports[0]).toMatchObject({ mode: 'close', openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(report.reports[1]).toMatchObject({ mode: 'close', openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
    expect(inFlight.errors).toEqual([]);
    expect(raw.errors).toEqual([]);
    expect(child.of('uncaught')).toEqual([]);
    expect(await opened.connectOutcome(child.port)).toBe('ECONNREFUSED');
  });

  test('SIGTERM twice: the second forces the drain, the held request is cut, exit 143 (128 + SIGTERM)', async () => {
    const child = await start({ timeout: 60_000 });
    const inFlight = await held(child);
    child.process.kill('SIGTERM');
    await bothDraining(child);
    child.process.kill('SIGTERM');
    expect(await child.exit()).toEqual({ code: 143, signal: null });
    const report = await done(child);
    expect(report).toMatchObject({ signal: 'SIGTERM', forced: true, timedOut: true, exitCode: 143 });
    // Ended gently at once, then destroyed: the deadlines of 60 s moved to now.
    expect(report.reports[0]).toMatchObject({ openAtClose: 1, served: 0, ended: 1 });
    await inFlight.finished();
    expect(inFlight.data).not.toContain('released');
    expect(child.of('uncaught')).toEqual([]);
  });

  test('SIGINT: the same clean drain, exit 0', async () => {
    const child = await start({});
    const inFlight = await held(child);
    child.process.kill('SIGINT');
    await bothDraining(child);
    child.process.stdin!.write('release\n');
    expect(await inFlight.response()).toMatchObject({ status: 200, body: 'released' });
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    expect(await done(child)).toMatchObject({ signal: 'SIGINT', forced: false, timedOut: false, exitCode: 0 });
  });

  test('a hung request and a short timeout: ended by the deadline, exit 1 (timed out)', async () => {
    const child = await start({ timeout: 200, forceTimeout: 200 });
    const hung = await held(child);
    child.process.kill('SIGTERM');
    expect(await child.exit()).toEqual({ code: EXIT_TIMED_OUT, signal: null });
    const report = await done(child);
    expect(report).toMatchObject({ signal: 'SIGTERM', forced: false, timedOut: true, exitCode: EXIT_TIMED_OUT });
    expect(report.reports[0]).toMatchObject({ openAtClose: 1, served: 0, ended: 1 });
    await hung.finished();
  });

  test('a listener closed by itself before the signal: its report counts; exit:false only resolves, the handlers are gone', async () => {
    const notify = path.join(opened.tempDir('gl-signals-'), 'notify');
    const receiver = await notifyReceiver(opened, [notify]);
    const child = await start({ exit: false, closeRawFirst: true }, { ...process.env, NOTIFY_SOCKET: notify });
    const rawClosed = (await child.first('raw-closed')).report as CloseReport;
    child.process.kill('SIGTERM');
    // Exits by itself (nothing left open), with the code of a process that returned.
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    const { report, handlers } = (await child.first('done')) as { report: ShutdownReport; handlers: number };
    expect(report).toMatchObject({ signal: 'SIGTERM', forced: false, timedOut: false, exitCode: 0 });
    expect(report.reports[1]).toEqual(rawClosed);
    expect(handlers).toBe(0);
    // STOPPING=1 once, before what the child sent after the shutdown.
    const datagrams = await receiver.until(2);
    expect(datagrams.map((datagram) => datagram.data)).toEqual(['STOPPING=1', 'STATUS=done']);
  });

  test('preStopDelay: from the signal /readyz answers 503 with Connection: close while a keep-alive client is served normally; a second signal ends it', async () => {
    const child = await start({ preStopDelay: 60_000, timeout: 60_000 });
    const before = await request(child.port, { path: '/readyz' });
    expect(before).toMatchObject({ status: 200, body: 'ok\n' });
    const keepAlive = opened.raw(child.port);
    keepAlive.socket.write(rawGet('/'));
    expect(await keepAlive.response()).toMatchObject({ status: 200, headers: { connection: 'keep-alive' } });

    child.process.kill('SIGTERM');
    // The probe and the pre-stop phase are both in the child: ask until the probe says 503.
    const probe = opened.raw(child.port);
    probe.socket.write(rawGet('/readyz'));
    let answer = await probe.response();
    while (answer.status === 200) {
      probe.socket.write(rawGet('/readyz'));
      answer = await probe.response();
    }
    expect(answer).toMatchObject({ status: 503, body: 'draining\n', headers: { connection: 'close' } });
    await probe.finished();
    // Still in the pre-stop phase: the listeners do not drain, keep-alive goes on.
    keepAlive.socket.write(rawGet('/'));
    expect(await keepAlive.response()).toMatchObject({ status: 200, body: 'ok', headers: { connection: 'keep-alive' } });
    expect(child.of('draining')).toEqual([]);
    expect(await opened.connectOutcome(child.port)).toBe('connected');

    child.process.kill('SIGTERM');
    expect(await child.exit()).toEqual({ code: 143, signal: null });
    expect(await done(child)).toMatchObject({ forced: true, exitCode: 143 });
    expect(keepAlive.errors).toEqual([]);
  });

  test('preStopDelay runs out by itself: then the drain, exit 0', async () => {
    const child = await start({ preStopDelay: 100 });
    child.process.kill('SIGTERM');
    await bothDraining(child);
    expect(await child.exit()).toEqual({ code: 0, signal: null });
    expect(await done(child)).toMatchObject({ signal: 'SIGTERM', forced: false, exitCode: 0 });
  });
});

describe('closeOnSignals() in this process (no signal sent)', () => {
  const counts = (): number[] => ['SIGTERM', 'SIGINT', 'SIGHUP'].map((signal) => process.listenerCount(signal));

  test('one handler per signal, even named twice; dispose() removes exactly them, idempotent', async () => {
    const listener = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
    const mine = (): void => {};
    process.on('SIGHUP', mine);
    const base = counts();
    const handle = closeOnSignals(listener, { signals: ['SIGTERM', 'SIGHUP', 'SIGTERM'], exit: false });
    expect(counts()).toEqual([base[0]! + 1, base[1]!, base[2]! + 1]);
    // A second handle for the same listener would drain it twice and race to exit.
    expect(() => closeOnSignals(listener, { exit: false })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(counts()).toEqual([base[0]! + 1, base[1]!, base[2]! + 1]);
    handle.dispose();
    handle.dispose();
    expect(counts()).toEqual(base);
    expect(process.listeners('SIGHUP')).toContain(mine);
    process.removeListener('SIGHUP', mine);
    // Disposed, the listener may be given to another handle.
    closeOnSignals(listener, { exit: false, signals: [] }).dispose();
    await opened.close(listener);
  });

  test('shutdown() without a signal: readiness turns false, every listener closes, done resolves and the handlers are removed', async () => {
    const first = opened.listener(await listen(http.createServer((_q, s) => s.end('ok')), { host: '127.0.0.1' }));
    const second = opened.listener(await listen(net.createServer(), { host: '127.0.0.1' }));
    await opened.close(second);
    const readiness = new Readiness();
    const base = counts();
    const handle = closeOnSignals([first, second], { exit: false, readiness });
    expect(counts()[0]).toBe(base[0]! + 1);
    expect(readiness.ready).toBe(true);
    const shutdown = handle.shutdown();
    expect(readiness.reason).toBe('signal');
    expect(handle.shutdown()).toBe(shutdown);
    const report = await shutdown;
    expect(report).toMatchObject({ signal: null, forced: false, timedOut: false, exitCode: 0 });
    expect(report.reports.map((r) => r.mode)).toEqual(['close', 'close']);
    expect(first.state).toBe('closed');
    expect(counts()).toEqual(base);
  });

  test('STOPPING=1 is sent once per process, whoever asks first (a listener from listen({ systemd }) or the signal)', () => {
    const sent: string[] = [];
    const binding = { notify: (_path: string, message: string) => void sent.push(message) } as unknown as NativeBinding;
    const saved = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = '@graceful-listener-test';
    try {
      expect(notifyStopping(binding)).toBe(true);
      expect(notifyStopping(binding)).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
    expect(sent).toEqual(['STOPPING=1']);
  });

  test('bad input', async () => {
    const listener = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
    const code = (thrower: () => unknown): string | undefined => {
      try {
        thrower();
      } catch (error) {
        return (error as { code?: string }).code;
      }
      return undefined;
    };
    expect(code(() => closeOnSignals({} as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals([listener, 1] as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals(listener, null as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals(listener, { signals: 'SIGTERM' as never }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals(listener, { signals: ['SIGKILL'] }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => closeOnSignals(listener, { signals: ['SIGNOPE' as never] }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => closeOnSignals(listener, { preStopDelay: -1 }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => closeOnSignals(listener, { timeout: 1.5 }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => closeOnSignals(listener, { forceTimeout: '1' as never }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals(listener, { exit: 1 as never }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => closeOnSignals(listener, { readiness: {} as never }))).toBe('ERR_INVALID_ARG_TYPE');
    // None of them installed anything or kept the listener.
    closeOnSignals(listener, { exit: false, signals: [] }).dispose();
    await opened.close(listener);
  });
});
