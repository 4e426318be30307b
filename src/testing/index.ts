export { runUnderLoad } from './load.js';
export type { BaseLoadOptions, DuringContext, LoadOptions, LoadProgress, LoadReport } from './load.js';
export { runRestarts } from './restarts.js';
export type {
  RestartCallbackOptions,
  RestartCommandOptions,
  RestartContext,
  RestartMode,
  RestartOptions,
  RestartProgress,
  RestartReport,
  RestartWindow,
  ServerProcessInfo,
  WindowCounts,
} from './restarts.js';
export type { ServerEvent, ServerProcessReport } from './server-process.js';
export type { LatencySummary, TimelineBucket } from './recorder.js';
export { ERROR_CODES, ERROR_KINDS, classifyError } from './outcome.js';
export type { Classified, Counts, ErrorKind } from './outcome.js';
export { LoadError } from './errors.js';
export type { LoadErrorCode } from './errors.js';
export { selfSignedCertificate } from './certificate.js';
export type { CertificateOptions, KeyPair } from './certificate.js';
export { isLoopback } from './target.js';
