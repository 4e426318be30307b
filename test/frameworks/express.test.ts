// examples/express.mjs, run as a user runs it. Express 5: the app as the request listener.
import { afterEach, test } from 'vitest';
import { Opened } from '../helpers/kit.js';
import { expectCleanShutdown, recipeUnderLoad } from '../helpers/recipes.js';

const opened = new Opened();
afterEach(() => opened.dispose());

test('examples/express.mjs: SIGTERM under load turns /readyz to 503, keeps serving, drains with no client reset, exits 0', async () => {
  expectCleanShutdown(await recipeUnderLoad(opened, 'express.mjs'));
});
