// A consumer of the installed package, ES module side: the same exercise as
// check.cts through `import`, and one module instance behind both entry
// points (the ESM entry re-exports the CommonJS build).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as packageApi from 'graceful-listener';
import { ListenerError, type CloseReport, type Listener } from 'graceful-listener';
import * as testingApi from 'graceful-listener/testing';
import check from './check.cjs';

const required = createRequire(import.meta.url)('graceful-listener') as typeof packageApi;
assert.equal(ListenerError, required.ListenerError);
assert.equal(packageApi.listen, required.listen);

// @ts-expect-error the declarations are real: close() reports, it does not take a callback.
const misuse: (listener: Listener) => Promise<CloseReport> = (listener) => listener.close(() => {});
void misuse;

check.run("import('graceful-listener')", packageApi, testingApi);
