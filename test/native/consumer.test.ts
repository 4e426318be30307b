// The package as a consumer sees it: resolved by name from node_modules (a
// symlink to this checkout), through package.json "exports", from the built
// dist/ — never from src/.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { repoRoot, requireDist, run, verdict } from '../helpers/kit.js';

let consumer: string;

beforeAll(() => {
  requireDist();
  consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-consumer-'));
  fs.mkdirSync(path.join(consumer, 'node_modules'));
  fs.symlinkSync(repoRoot, path.join(consumer, 'node_modules', 'graceful-listener'), 'dir');
});

afterAll(() => {
  if (consumer !== undefined) fs.rmSync(consumer, { recursive: true, force: true });
});

interface Opened {
  port: number;
  family: string;
  resolved?: string;
  same?: boolean;
}

const CJS = `
const { ListenSocket, ListenerError } = require('graceful-listener');
ListenSocket.open({ host: '127.0.0.1', port: 0 }).then((listener) => {
  const { port, family } = listener.address();
  listener.close();
  console.log(JSON.stringify({
    port,
    family,
    resolved: require.resolve('graceful-listener'),
    same: typeof ListenerError === 'function' && listener instanceof ListenSocket,
  }));
});
`;

const ESM = `
import { ListenSocket, ListenerError } from 'graceful-listener';
import { createRequire } from 'node:module';
import path from 'node:path';
const require = createRequire(path.join(process.cwd(), 'consumer.cjs'));
const cjs = require('graceful-listener');
const listener = await ListenSocket.open({ host: '127.0.0.1', port: 0 });
const { port, family } = listener.address();
listener.close();
console.log(JSON.stringify({
  port,
  family,
  resolved: import.meta.resolve('graceful-listener'),
  same: cjs.ListenSocket === ListenSocket && cjs.ListenerError === ListenerError,
}));
`;

describe('from a consumer package', () => {
  test("require('graceful-listener') opens a listener", async () => {
    const result = await run(process.execPath, ['-e', CJS], { cwd: consumer });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const opened = verdict<Opened>(result);
    expect(opened).toMatchObject({ family: 'IPv4', same: true });
    expect(opened.port).toBeGreaterThan(0);
    expect(fs.realpathSync(opened.resolved!)).toBe(path.join(repoRoot, 'dist', 'index.js'));
  });

  test("import { ListenSocket } from 'graceful-listener' opens a listener, with the same classes as require()", async () => {
    const result = await run(process.execPath, ['--input-type=module', '-e', ESM], { cwd: consumer });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const opened = verdict<Opened>(result);
    expect(opened).toMatchObject({ family: 'IPv4', same: true });
    expect(opened.port).toBeGreaterThan(0);
    expect(opened.resolved).toMatch(/\/dist\/index\.mjs$/);
  });

  test('the type declarations resolve for both entry points', async () => {
    fs.writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          // What a consumer sees through the declarations is still checked;
          // re-checking all of @types/node would only triple the run time.
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
        },
        files: ['consumer.cts', 'consumer.mts'],
      }),
    );
    const body = `
const listener: ListenSocket = await ListenSocket.open({ host: '127.0.0.1', port: 0, backlog: 16 });
const pending: Pending = listener.pending({ handshakes: true });
const options: OpenOptions = { reusePort: true };
const code: ListenerErrorCode = new ListenerError('ERR_LISTENER_CLOSED', 'closed').code;
export const used = [pending.queued, options, code, listener.address().port];
`;
    fs.writeFileSync(
      path.join(consumer, 'consumer.cts'),
      `import { ListenSocket, ListenerError, type OpenOptions, type Pending, type ListenerErrorCode } from 'graceful-listener';\n` +
        `async function main() {${body.replace('export const used =', 'return')}}\nexport = main;\n`,
    );
    fs.writeFileSync(
      path.join(consumer, 'consumer.mts'),
      `import { ListenSocket, ListenerError, type OpenOptions, type Pending, type ListenerErrorCode } from 'graceful-listener';\n${body}`,
    );
    const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', path.join(consumer, 'tsconfig.json')], {
      cwd: consumer,
      killAfterMs: 60_000,
    });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 90_000);
});
