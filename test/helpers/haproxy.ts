// A real HAProxy for the deployment tests: the config written to a temp dir,
// the frontend's listening socket opened here and passed as fd 3 (`bind
// fd@3`: no port to guess), the process in the foreground (-db), and the
// runtime API on an admin socket in the same dir.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ListenSocket } from '../../src/index.js';
import type { Opened } from './opened.js';
import { waitFor, within, type What } from './wait.js';

/** The haproxy binary, or undefined when it is not installed. */
export function haproxyBinary(): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    const candidate = path.join(dir, 'haproxy');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/** One server slot as `show servers state` lists it. */
export interface ServerSlot {
  name: string;
  address: string;
  port: number;
  /** srv_op_state: 0 stopped (down), 1 starting, 2 running (up), 3 stopping. */
  operational: number;
}

export interface HaproxyOptions {
  /** The backend section's lines after `balance` (health checks, servers). */
  backend: string[];
  /** Lines added to `defaults`. */
  defaults: string[];
}

export class Haproxy {
  readonly port: number;
  readonly child: ChildProcess;
  readonly #socketPath: string;
  #output = '';

  private constructor(port: number, child: ChildProcess, socketPath: string) {
    this.port = port;
    this.child = child;
    this.#socketPath = socketPath;
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.#output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.#output += chunk));
  }

  /** What haproxy printed so far (its alerts and warnings). */
  get output(): string {
    return this.#output;
  }

  /**
   * Writes the config into `dir`, checks it (`haproxy -c`), starts haproxy on
   * a loopback socket of ours and resolves once its admin socket answers.
   */
  static async start(opened: Opened, binary: string, dir: string, options: HaproxyOptions): Promise<Haproxy> {
    const socketPath = path.join(dir, 'admin.sock');
    const config = [
      'global',
      `  stats socket ${socketPath} mode 600 level admin`,
      `  pidfile ${path.join(dir, 'haproxy.pid')}`,
      '  maxconn 4096',
      'defaults',
      '  mode http',
      ...options.defaults.map((line) => `  ${line}`),
      'frontend web',
      '  bind fd@3',
      '  default_backend app',
      'backend app',
      '  balance roundrobin',
      ...options.backend.map((line) => `  ${line}`),
      '',
    ].join('\n');
    const configPath = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(configPath, config);
    const socket = await ListenSocket.open({ host: '127.0.0.1', port: 0 });
    const { port } = socket.address();
    // spawn() dup2()s the fd onto the child's fd 3, which clears CLOEXEC there only.
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', socket.fd];
    let child: ChildProcess;
    try {
      const check = spawnSync(binary, ['-c', '-q', '-f', configPath], { stdio, encoding: 'utf8', timeout: 20_000 });
      if (check.status !== 0) throw new Error(`haproxy -c refused the config (${check.status ?? check.signal}): ${check.stderr}\n${config}`);
      child = opened.child(spawn(binary, ['-db', '-f', configPath], { stdio }));
    } finally {
      // HAProxy holds its own copy now; ours would keep the port open after it exits.
      socket.close();
    }
    const haproxy = new Haproxy(port, child, socketPath);
    const exited = new Promise<never>((_resolve, reject) =>
      child.once('exit', (code, signal) => reject(new Error(`haproxy exited (${code ?? signal}): ${haproxy.output}`))),
    );
    exited.catch(() => {});
    await Promise.race([
      exited,
      waitFor('the haproxy admin socket', async () => {
        try {
          await haproxy.command('show info');
          return true;
        } catch {
          return false;
        }
      }),
    ]);
    return haproxy;
  }

  /** One runtime API command on the admin socket; resolves with the answer. */
  command(line: string): Promise<string> {
    return within(
      new Promise<string>((resolve, reject) => {
        const connection = net.connect(this.#socketPath);
        let answer = '';
        connection.setEncoding('utf8');
        connection.on('connect', () => connection.end(`${line}\n`));
        connection.on('data', (chunk: string) => (answer += chunk));
        connection.on('end', () => resolve(answer));
        connection.on('error', reject);
      }),
      `haproxy to answer '${line}'`,
    );
  }

  /** `show servers state` of the backend, parsed. */
  async slots(backend = 'app'): Promise<Map<string, ServerSlot>> {
    const answer = await this.command(`show servers state ${backend}`);
    const lines = answer.split('\n');
    const header = (lines.find((line) => line.startsWith('# be_id')) ?? '').slice(2).split(' ');
    const column = (name: string): number => header.indexOf(name);
    const slots = new Map<string, ServerSlot>();
    for (const line of lines) {
      if (line.startsWith('#') || line.trim() === '' || !/^\d/.test(line)) continue;
      const fields = line.split(' ');
      const slot: ServerSlot = {
        name: fields[column('srv_name')]!,
        address: fields[column('srv_addr')]!,
        port: Number(fields[column('srv_port')]),
        operational: Number(fields[column('srv_op_state')]),
      };
      slots.set(slot.name, slot);
    }
    return slots;
  }

  /** Resolves once `check` holds on the backend's slots (bounded). */
  async until(what: What, check: (slots: Map<string, ServerSlot>) => boolean): Promise<void> {
    await waitFor(what, async () => check(await this.slots()), { tries: 1000, intervalMs: 20 });
  }

  /** SIGTERM (haproxy stops at once) and its exit; SIGKILL at dispose if it hangs. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await within(exited, 'haproxy to exit');
  }
}
