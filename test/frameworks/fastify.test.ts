// examples/fastify.mjs, run as a user runs it. Fastify 5: listen() on app.server after ready(), app.close() after the drain.
import { afterEach, test } from 'vitest';
import { Opened } from '../helpers/kit.js';
import { expectCleanShutdown, recipeUnderLoad } from '../helpers/recipes.js';

const opened = new Opened();
afterEach(() => opened.dispose());

test('examples/fastify.mjs: SIGTERM under load turns /readyz to 503, keeps serving, drains with no client reset, exits 0', async () => {
  expectCleanShutdown(await recipeUnderLoad(opened, 'fastify.mjs'));
});
