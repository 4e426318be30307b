// The ESM entry re-exports the CommonJS build, so both entry points share one
// module instance (one set of classes for instanceof).
export { runUnderLoad, ERROR_CODES, ERROR_KINDS, classifyError, LoadError, selfSignedCertificate, isLoopback } from './index.js';
export type {
  Counts,
  DuringContext,
  LatencySummary,
  LoadOptions,
  LoadProgress,
  LoadReport,
  TimelineBucket,
  Classified,
  ErrorKind,
  LoadErrorCode,
  CertificateOptions,
  KeyPair,
} from './index.js';
