// What every benchmark shares: the machine description at the head of its
// JSON, writing that JSON, the median, and a TLS certificate.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/** The header of a benchmark's JSON: which benchmark, when, and on what. */
export function machine(bench) {
  return {
    bench,
    date: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    cores: os.cpus().length,
  };
}

export function writeResult(file, report) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file) || file}`);
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A self-signed certificate for localhost and 127.0.0.1, from the package's test kit (dist/). */
export function certificate() {
  const require = createRequire(import.meta.url);
  return require('../../dist/testing/index.js').selfSignedCertificate();
}

/** Open fds of this process. */
export function openFds() {
  return fs.readdirSync('/proc/self/fd').length;
}

/** A few GC passes (with --expose-gc) and event-loop turns, before a resource reading. */
export async function settle() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
