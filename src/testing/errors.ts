export type LoadErrorCode = 'ERR_LOAD_REMOTE_TARGET' | 'ERR_DURING_FAILED' | 'ERR_DURING_TIMEOUT' | 'ERR_RESTART_FAILED';

/**
 * An error of the load kit. When the load ran, `report` holds what it
 * measured, so a failed `during()` still shows what the clients saw.
 */
export class LoadError extends Error {
  readonly code: LoadErrorCode;
  readonly report: unknown;

  constructor(code: LoadErrorCode, message: string, options: { cause?: unknown; report?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'LoadError';
    this.code = code;
    this.report = options.report;
  }
}
