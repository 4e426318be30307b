export { ListenSocket } from './core/listen-socket.js';
export type { OpenOptions, Pending } from './core/listen-socket.js';
export { ListenerError } from './core/errors.js';
export type { ListenerErrorCode } from './core/errors.js';
