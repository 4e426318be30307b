export { listen, adopt } from './listen.js';
export type { ListenOptions } from './listen.js';
export { Listener } from './listener.js';
export type { CloseOptions, CloseReport, Connection, ConnectionSink, ListenerState } from './listener.js';
export { ListenSocket } from './core/listen-socket.js';
export type { OpenOptions, Pending } from './core/listen-socket.js';
export { ListenerError } from './core/errors.js';
export type { ListenerErrorCode } from './core/errors.js';
