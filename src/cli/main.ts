#!/usr/bin/env node
// The `graceful-listener` command: `demo`, `demo-socket` and `load`.
import { packageVersion } from '../testing/report.js';
import { DEMO_SOCKET_USAGE, demoSocketCommand } from './demo-socket.js';
import { DEMO_USAGE, demoCommand } from './demo.js';
import { LOAD_USAGE, loadCommand } from './load.js';
import { UsageError } from './options.js';

const USAGE = `Usage: graceful-listener <command> [options]

Commands:
  demo          server.close() against listener.close() under load, side by side
  demo-socket   the ListenSocket: clients wait in the accept queue while accept()
                is off, then are accepted in batches
  load <url>    drive your own server and count every outcome (RST, refusal, ...)

graceful-listener <command> --help shows a command's options.`;

// The commands check their flags' ranges themselves; what else is the user's
// mistake: an unknown flag, a URL that is not one, a target not on loopback.
function isUsageError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return (
    error instanceof UsageError ||
    (typeof code === 'string' &&
      (code.startsWith('ERR_PARSE_ARGS_') || code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_LOAD_REMOTE_TARGET'))
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo':
      return demoCommand(rest);
    case 'demo-socket':
      return demoSocketCommand(rest);
    case 'load':
      return loadCommand(rest);
    case '--version':
    case '-v':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${[USAGE, DEMO_USAGE, DEMO_SOCKET_USAGE, LOAD_USAGE].join('\n\n')}\n`);
      return 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (isUsageError(error)) {
      process.stderr.write(`graceful-listener: ${(error as Error).message}\n(see graceful-listener --help)\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`graceful-listener: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
