// Only test/reconfigure/handover.test.ts still imports from here; the kit
// (kit.ts) is where every helper lives.
export { waitFor } from './wait.js';
