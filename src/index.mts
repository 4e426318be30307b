// The ESM entry re-exports the CommonJS build, so both entry points share one
// module instance (one addon load, one set of classes for instanceof).
export { listen, adopt, sdNotify, Listener, ServerListener, ListenSocket, ListenerError } from './index.js';
export type {
  ListenOptions,
  AdoptOptions,
  DrainOptions,
  HttpDrainOptions,
  HttpDrainStats,
  Http2DrainOptions,
  Http2DrainStats,
  CloseOptions,
  CloseReport,
  RetireOptions,
  ReplaceOptions,
  DrainReport,
  Connection,
  ConnectionSink,
  ListenerState,
  OpenOptions,
  Pending,
  HandshakeRequest,
  ListenerErrorCode,
  HandoverOptions,
  HandoverEvent,
} from './index.js';
