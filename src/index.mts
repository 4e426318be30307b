// The ESM entry re-exports the CommonJS build, so both entry points share one
// module instance (one addon load, one set of classes for instanceof).
export { listen, adopt, Listener, ListenSocket, ListenerError } from './index.js';
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
  Connection,
  ConnectionSink,
  ListenerState,
  OpenOptions,
  Pending,
  HandshakeRequest,
  ListenerErrorCode,
} from './index.js';
