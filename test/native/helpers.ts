// Only test/helpers/restarts.ts still imports from here; the kit
// (test/helpers/kit.ts) is where every helper lives.
export { requireDist } from '../helpers/children.js';
