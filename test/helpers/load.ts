// Load generators for test/close, each in a child process so that the
// server's event loop can be blocked (or busy) while the clients run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = __dirname;

export interface QueuedClientResult {
  connected: boolean;
  status: number | null;
  connectionClose: boolean;
  error: string | null;
}

export interface QueuedClients {
  readonly child: ChildProcess;
  /** Tells the child to connect; the write reaches the pipe before this returns. */
  go(): void;
  /** Every client's outcome, once all have finished (the child bounds this at 20 s). */
  readonly results: Promise<QueuedClientResult[]>;
}

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
}

/**
 * `count` raw TCP clients in a child process, each sending one HTTP request
 * as soon as it connects. Resolves once the child is ready to connect.
 */
export function queuedClients(port: number, count: number): Promise<QueuedClients> {
  const child = spawn(process.execPath, [path.join(here, 'queued-clients.mjs'), String(port), String(count)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolveReady, rejectReady) => {
    let resolveResults!: (results: QueuedClientResult[]) => void;
    let rejectResults!: (error: Error) => void;
    const results = new Promise<QueuedClientResult[]>((resolve, reject) => {
      resolveResults = resolve;
      rejectResults = reject;
    });
    // Only awaited by the test after go(); keep an early failure from being unhandled.
    results.catch(() => {});
    lines(child, (line) => {
      if (line === 'ready') {
        resolveReady({
          child,
          // A pipe write is attempted synchronously by libuv, so the child
          // gets "go" even while this process blocks its loop afterwards.
          go: () => child.stdin!.write('go\n'),
          results,
        });
      } else {
        resolveResults((JSON.parse(line) as { results: QueuedClientResult[] }).results);
      }
    });
    child.on('error', (error) => {
      rejectReady(error);
      rejectResults(error);
    });
    child.on('exit', (code, signal) => {
      const error = new Error(`queued-clients exited (${code ?? signal}) without a result: ${stderr}`);
      rejectReady(error);
      rejectResults(error);
    });
  });
}

/** Tallies of what happened to a set of clients, by outcome. */
export function tally<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

let stormBinary: string | undefined;

/** Compiles test/helpers/storm.c once per process (cc -O2); returns the binary's path. */
export function compileStorm(): string {
  if (stormBinary !== undefined) return stormBinary;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-storm-'));
  const binary = path.join(dir, 'storm');
  execFileSync('cc', ['-O2', '-Wall', '-o', binary, path.join(here, 'storm.c')], { stdio: 'pipe' });
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  stormBinary = binary;
  return binary;
}
