// The ESM entry re-exports the CommonJS build, so both entry points share one
// module instance (one addon load, one set of classes for instanceof).
export { ListenSocket, ListenerError } from './index.js';
export type { OpenOptions, Pending, ListenerErrorCode } from './index.js';
