// examples/koa.mjs, run as a user runs it. Koa 3: app.callback() on http.createServer.
import { afterEach, test } from 'vitest';
import { Opened } from '../helpers/kit.js';
import { expectCleanShutdown, recipeUnderLoad } from '../helpers/recipes.js';

const opened = new Opened();
afterEach(() => opened.dispose());

test('examples/koa.mjs: SIGTERM under load turns /readyz to 503, keeps serving, drains with no client reset, exits 0', async () => {
  expectCleanShutdown(await recipeUnderLoad(opened, 'koa.mjs'));
});
