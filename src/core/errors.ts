/** Stable codes for lifecycle errors; system errors keep Node's own codes. */
export type ListenerErrorCode =
  | 'ERR_LISTENER_CLOSED'
  | 'ERR_LISTENER_DRAINING'
  | 'ERR_LISTENER_SERVING'
  | 'ERR_CLOSE_ABORTED'
  | 'ERR_SERVER_ALREADY_LISTEN'
  | 'ERR_SERVER_NOT_LISTENING'
  | 'ERR_SERVER_CLOSED'
  | 'ERR_HANDOVER_FAILED'
  | 'ERR_SYSTEMD_SOCKET'
  | 'ERR_UNSUPPORTED_PLATFORM'
  | 'ERR_UNIX_LISTENER';

/** An error about the listener's lifecycle, not about the system. */
export class ListenerError extends Error {
  readonly code: ListenerErrorCode;

  constructor(code: ListenerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ListenerError';
    this.code = code;
  }
}

type ArgErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_OUT_OF_RANGE';

function withCode<E extends Error>(error: E, code: ArgErrorCode): E & { code: ArgErrorCode } {
  return Object.assign(error, { code });
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'string') return `type string (${JSON.stringify(value.slice(0, 28))})`;
  return `type ${typeof value} (${String(value)})`;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  return withCode(
    new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

export function invalidArgValue(
  name: string,
  value: unknown,
  reason: string,
  cause?: unknown,
): TypeError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return withCode(
    new TypeError(`The argument '${name}' ${reason}. Received ${shown}`, { cause }),
    'ERR_INVALID_ARG_VALUE',
  );
}

export function outOfRange(name: string, range: string, value: unknown): RangeError {
  return withCode(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${String(value)}`),
    'ERR_OUT_OF_RANGE',
  );
}
