export { runUnderLoad } from './load.js';
export type {
  Counts,
  DuringContext,
  LatencySummary,
  LoadOptions,
  LoadProgress,
  LoadReport,
  TimelineBucket,
} from './load.js';
export { ERROR_CODES, ERROR_KINDS, classifyError } from './outcome.js';
export type { Classified, ErrorKind } from './outcome.js';
export { LoadError } from './errors.js';
export type { LoadErrorCode } from './errors.js';
export { selfSignedCertificate } from './certificate.js';
export type { CertificateOptions, KeyPair } from './certificate.js';
export { isLoopback } from './target.js';
