// Self-signed certificates made at test time with the openssl CLI (P-256:
// fast to generate and to handshake), one per name. The temp dir is removed
// as soon as the PEM text is read.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface KeyPair {
  key: string;
  cert: string;
}

export function makeCerts(names: string[]): Map<string, KeyPair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graceful-listener-certs-'));
  const pairs = new Map<string, KeyPair>();
  try {
    for (const name of names) {
      const keyPath = path.join(dir, `${name}.key`);
      const certPath = path.join(dir, `${name}.crt`);
      execFileSync(
        'openssl',
        [
          'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
          '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${name}`,
          '-addext', `subjectAltName=DNS:${name},IP:127.0.0.1`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 },
      );
      pairs.set(name, { key: fs.readFileSync(keyPath, 'utf8'), cert: fs.readFileSync(certPath, 'utf8') });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return pairs;
}
