// Drives restarts of test/helpers/restart-child.mjs: each generation a real
// process, started, watched and reaped here. Every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { selfSignedCertificate } from '../../src/testing/index.js';
import { requireDist } from '../native/helpers.js';

const CHILD = path.join(__dirname, 'restart-child.mjs');

export interface ChildEvent {
  event: string;
  [key: string]: unknown;
}

/** One generation of the server: a child process and what it printed. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<number | null>;
  pid = 0;
  port = 0;
  readonly #listening: Promise<void>;

  constructor(child: ChildProcess) {
    this.child = child;
    let buffered = '';
    let resolveListening!: () => void;
    let rejectListening!: (error: Error) => void;
    this.#listening = new Promise((resolve, reject) => {
      resolveListening = resolve;
      rejectListening = reject;
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const event = JSON.parse(buffered.slice(0, newline)) as ChildEvent;
        buffered = buffered.slice(newline + 1);
        this.events.push(event);
        if (event.event === 'listening') {
          this.pid = event.pid as number;
          this.port = event.port as number;
          resolveListening();
        } else if (event.event === 'error') {
          rejectListening(new Error(`the server process failed to listen: ${String(event.code)} ${String(event.message)}`));
        }
      }
    });
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    void this.exited.then((code) => rejectListening(new Error(`the server process exited (${code}) before listening: ${stderr}`)));
  }

  listening(): Promise<void> {
    return this.#listening;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  saw(event: string): boolean {
    return this.events.some((e) => e.event === event);
  }
}

/** A directory with the test certificate and room for a control socket; removed by `dispose()`. */
export class RestartBench {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-restart-'));
  readonly control = path.join(this.dir, 'control.sock');
  readonly cert: string;
  readonly processes: ServerProcess[] = [];
  #alive = 0;
  /** The most server processes alive at one time. */
  maxAlive = 0;

  constructor() {
    const { key, cert } = selfSignedCertificate();
    fs.writeFileSync(path.join(this.dir, 'key.pem'), key);
    fs.writeFileSync(path.join(this.dir, 'cert.pem'), cert);
    this.cert = cert;
  }

  /** Starts a generation; resolves once it listens. */
  async start(mode: 'handover' | 'plain', port: number): Promise<ServerProcess> {
    const child = spawn(process.execPath, [CHILD, requireDist(), mode, this.control, String(port), this.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(child);
    this.processes.push(server);
    this.maxAlive = Math.max(this.maxAlive, ++this.#alive);
    void server.exited.then(() => this.#alive--);
    await server.listening();
    return server;
  }

  get alive(): number {
    return this.#alive;
  }

  dispose(): void {
    for (const server of this.processes) if (server.alive) server.child.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
