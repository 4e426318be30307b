// A consumer of the installed package, CommonJS side: compiled by the
// consumer's tsc (module node16 and nodenext) against the shipped
// declarations, then run with node. check.mts runs the same `exercise` with
// the ES module namespaces.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import * as packageApi from 'graceful-listener';
import { listen, type CloseReport, type Listener, type ListenerError } from 'graceful-listener';
import * as testingApi from 'graceful-listener/testing';
import type { LoadReport } from 'graceful-listener/testing';

const REQUESTS = 20;

// @ts-expect-error the declarations are real: a port is a number.
void (() => listen(http.createServer(), { port: 'eighty' }));

/** The package's .node files mapped into this process, relative to the installed package. */
function mappedAddons(): string[] {
  const root = path.dirname(require.resolve('graceful-listener/package.json'));
  const files = new Set<string>();
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && file.endsWith('.node') && file.startsWith(root + path.sep)) {
      files.add(path.relative(root, file));
    }
  }
  return [...files];
}

/**
 * Serves REQUESTS requests on 127.0.0.1 through `listen()`, driven by the
 * testing kit's load generator, closes the listener, checks the report and
 * a wrong-state call, and returns the addon file the process loaded.
 */
export async function exercise(api: typeof packageApi, testing: typeof testingApi): Promise<string> {
  const server = http.createServer((_request, response) => response.end('served'));
  const listener: Listener<net.Socket> = await api.listen(server, { host: '127.0.0.1', port: 0 });
  assert.ok(listener instanceof api.Listener);
  assert.equal(listener.state, 'accepting');
  const { port } = listener.address();
  const load: LoadReport = await testing.runUnderLoad({
    url: `http://127.0.0.1:${port}/`,
    concurrency: 2,
    maxRequests: REQUESTS,
    duration: 20_000,
  });
  assert.equal(load.ok, REQUESTS, JSON.stringify(load.errors));
  const report: CloseReport = await listener.close();
  assert.equal(report.mode, 'close');
  assert.equal(report.destroyed, 0);
  assert.equal(listener.state, 'closed');
  const isClosedError = (error: unknown): error is ListenerError =>
    error instanceof api.ListenerError && error.code === 'ERR_LISTENER_CLOSED';
  assert.throws(() => listener.pause(), isClosedError);
  assert.equal(testing.isLoopback('127.0.0.1'), true);
  const addons = mappedAddons();
  assert.equal(addons.length, 1, `mapped: ${addons.join(', ')}`);
  return addons[0]!;
}

/** Runs `exercise` and fails unless the addon loaded is under the directory EXPECT_ADDON names. */
export function run(how: string, api: typeof packageApi, testing: typeof testingApi): void {
  const expected = process.env.EXPECT_ADDON;
  exercise(api, testing).then(
    (addon) => {
      assert.ok(expected && addon.startsWith(`${expected}/`), `loaded ${addon}, expected one under ${expected}/`);
      console.log(`${how}: ${REQUESTS} requests served on 127.0.0.1 and the listener closed; addon ${addon}`);
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}

if (require.main === module) run("require('graceful-listener')", packageApi, testingApi);
