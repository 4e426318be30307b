// Load generators, each in a child process so that the server's event loop
// can be blocked (or busy) while the clients run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lines } from './children.js';
import type { Opened } from './opened.js';

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

/**
 * `count` raw clients in a child process — TCP to 127.0.0.1:`target`, or
 * AF_UNIX to the path `target` — each sending one HTTP request as soon as it
 * connects. With `connectedFile`, the child creates that file once every
 * client is connected. Resolves once the child is ready to connect.
 */
export function queuedClients(target: number | string, count: number, connectedFile?: string): Promise<QueuedClients> {
  const args = [path.join(here, 'queued-clients.mjs'), String(target), String(count)];
  if (connectedFile !== undefined) args.push(connectedFile);
  const child = spawn(process.execPath, args, {
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
    new Lines(child.stdout!).on('line', (line: string) => {
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
    // 'close', not 'exit': by then stdout has been read to its end.
    child.on('close', (code, signal) => {
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

/** What storm.c prints when it ends (see its header for each count). */
export interface StormResult {
  attempted: number;
  established: number;
  answered: number;
  refused: number;
  timedOut: number;
  resetEstablished: number;
  resetConnecting: number;
  noAnswer: number;
  stalled: number;
  other: Record<string, number>;
}

export interface StormOptions {
  /** Connects started per second, whatever happens to earlier ones. */
  rate: number;
  /** Stops starting connects after this long (or at stop()). */
  maxMs: number;
  /** How long connections still in flight then get to finish. */
  graceMs: number;
  /** A connect still connecting after this long is abandoned. */
  connectTimeoutMs: number;
}

/**
 * An open-loop connect storm (storm.c) against 127.0.0.1:`port`, killed at
 * the test's end. `result` resolves once it has finished by itself; `stop()`
 * ends it early (stdin's EOF) and resolves with the result.
 */
export function startStorm(
  opened: Opened,
  port: number,
  { rate, maxMs, graceMs, connectTimeoutMs }: StormOptions,
): { child: ChildProcess; result: Promise<StormResult>; stop(): Promise<StormResult> } {
  const args = ['127.0.0.1', port, rate, maxMs, graceMs, connectTimeoutMs].map(String);
  const child = opened.child(spawn(compileStorm(), args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const result = new Promise<StormResult>((resolve, reject) =>
    child.on('close', (code, signal) => {
      try {
        resolve(JSON.parse(output) as StormResult);
      } catch {
        reject(new Error(`storm printed no result (${code ?? signal}): ${output}`));
      }
    }),
  );
  result.catch(() => {});
  return {
    child,
    result,
    stop: () => {
      child.stdin!.end();
      return result;
    },
  };
}

/** What unix-loop.mjs prints when it ends (see its header). */
export interface UnixLoopResult {
  answered: number;
  connectErrors: Record<string, number>;
  failures: Record<string, number>;
}

/**
 * `concurrency` AF_UNIX clients in a child process (unix-loop.mjs), each
 * connecting to `socketPath` (a leading NUL: abstract) in a loop, sending
 * "ping\n" and expecting "pong\n" and EOF, until `stop()` (or `maxMs`, a
 * hang bound). Resolves once the clients run.
 */
export async function unixLoop(
  opened: Opened,
  socketPath: string,
  { concurrency, maxMs }: { concurrency: number; maxMs: number },
): Promise<{ stop(): Promise<UnixLoopResult> }> {
  const target = socketPath.startsWith('\0') ? `@${socketPath.slice(1)}` : socketPath;
  const child = opened.child(
    spawn(process.execPath, [path.join(here, 'unix-loop.mjs'), target, String(concurrency), String(maxMs)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines: string[] = [];
  let onLine: (() => void) | undefined;
  new Lines(child.stdout!).on('line', (line: string) => {
    lines.push(line);
    onLine?.();
  });
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const nextLine = (index: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (lines.length > index) resolve(lines[index]!);
      };
      onLine = check;
      check();
      void closed.then(() => {
        check();
        reject(new Error(`unix-loop exited without line ${index}: ${stderr}`));
      });
    });
  await nextLine(0);
  return {
    stop: async () => {
      child.stdin!.end();
      return JSON.parse(await nextLine(1)) as UnixLoopResult;
    },
  };
}
