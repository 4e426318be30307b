// What the restart tests share: a directory with the test certificate and
// room for a control socket, and the command that starts one generation of
// test/helpers/restart-child.mjs for the load kit's runRestarts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { selfSignedCertificate, type ServerProcessInfo } from '../../src/testing/index.js';
import { requireDist } from './children.js';

const CHILD = path.join(__dirname, 'restart-child.mjs');

/** A directory with the test certificate and room for a control socket; removed by `dispose()`. */
export class RestartDir {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-restart-'));
  readonly control = path.join(this.dir, 'control.sock');
  readonly cert: string;

  constructor() {
    const { key, cert } = selfSignedCertificate();
    fs.writeFileSync(path.join(this.dir, 'key.pem'), key);
    fs.writeFileSync(path.join(this.dir, 'cert.pem'), cert);
    this.cert = cert;
  }

  /**
   * runRestarts' `command`: restart-child.mjs with `listen(server, { handover })`,
   * or a plain listen(), every process on `port` (from `stablePort()`: a
   * close-then-listen restart binds it again while clients connect).
   */
  command(mode: 'handover' | 'plain', port: number): (server: ServerProcessInfo) => string[] {
    const entry = requireDist();
    return () => [process.execPath, CHILD, entry, mode, this.control, String(port), this.dir];
  }

  url = (port: number): string => `https://127.0.0.1:${port}/`;

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
