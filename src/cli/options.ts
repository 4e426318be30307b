import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command-line mistake: the message is printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `2`, `2s`, `2.5s` and `500ms` → milliseconds (a bare number is seconds). */
export function parseDuration(flag: string, text: string, { min, max = 3_600_000 }: { min: number; max?: number }): number {
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

/** The flags of every command that writes a report. */
export const REPORT_FLAGS = {
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

const HELP_FLAG = { help: { type: 'boolean', short: 'h', default: false } } as const;

type CommandConfig<O> = { args: string[]; strict: true; allowPositionals: boolean; options: O & typeof HELP_FLAG };

/**
 * A command's arguments, strictly parsed (an unknown flag is a usage error);
 * `undefined` once `--help` printed the usage instead.
 */
export function parseCommand<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  usage: string,
  options: O,
  { positionals = false } = {},
): ReturnType<typeof parseArgs<CommandConfig<O>>> | undefined {
  const config: CommandConfig<O> = { args: argv, strict: true, allowPositionals: positionals, options: { ...options, ...HELP_FLAG } };
  const parsed = parseArgs(config);
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  return parsed;
}
