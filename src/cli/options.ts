import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A command-line mistake: the message is printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `2`, `2s`, `2.5s` and `500ms` → milliseconds (a bare number is seconds). */
export function parseDuration(flag: string, text: string, { min = 1, max = 3_600_000 } = {}): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim());
  const ms = match === null ? NaN : Math.round(Number(match[1]) * (match[2] === 'ms' ? 1 : 1000));
  if (!Number.isFinite(ms) || ms < min || ms > max) {
    throw new UsageError(`--${flag} must be a duration from ${min} ms to ${max / 1000} s (e.g. 3, 2.5s, 500ms); got ${JSON.stringify(text)}`);
  }
  return ms;
}

export function parseInteger(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}; got ${JSON.stringify(text)}`);
  }
  return value;
}

export function parseChoice<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`--${flag} must be one of ${choices.join(', ')}; got ${JSON.stringify(text)}`);
  }
  return text as T;
}

/** The output directory: `--out`, or a new one under the system's temp dir. */
export function outputDirectory(given: string | undefined, prefix: string): string {
  if (given !== undefined) {
    fs.mkdirSync(given, { recursive: true });
    return path.resolve(given);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-${stamp}-`));
}

export function packageVersion(): string {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      version?: string;
    };
    return manifest.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
