/**
 * Why a request failed, by what the client can tell apart:
 * - `reset`: the kernel reported a RST (`ECONNRESET`/`EPIPE` from a syscall)
 * - `refused`: `ECONNREFUSED`, nothing listened
 * - `closed`: the server closed the connection (FIN) before answering; Node
 *   reports this as `ECONNRESET` too ("socket hang up", "disconnected before
 *   secure TLS connection"), but no RST was sent
 * - `retryable`: HTTP/2 refused the stream (GOAWAY, `REFUSED_STREAM`): the
 *   server never processed it, a client may send it again
 * - `tls`: certificate or TLS protocol errors
 * - `timeout`: no answer within the request timeout
 * - `other`: anything else, by its code
 */
export type ErrorKind = 'reset' | 'refused' | 'closed' | 'retryable' | 'tls' | 'timeout' | 'other';

export const ERROR_KINDS: readonly ErrorKind[] = ['reset', 'refused', 'closed', 'retryable', 'tls', 'timeout', 'other'];

/** Failed requests by kind. */
export type Counts = Record<ErrorKind, number>;

export function emptyCounts(): Counts {
  return Object.fromEntries(ERROR_KINDS.map((kind) => [kind, 0])) as Counts;
}

export interface Classified {
  kind: ErrorKind;
  /** The system error code, or a name of ours where Node's code is ambiguous (see {@link ERROR_CODES}). */
  code: string;
}

/** The codes of ours, for outcomes that Node reports under another code. */
export const ERROR_CODES: Readonly<Record<string, string>> = {
  EOF_BEFORE_RESPONSE: 'the server closed the connection before answering (Node: ECONNRESET "socket hang up")',
  EOF_IN_TLS_HANDSHAKE:
    'the server closed the connection during the TLS handshake (Node: ECONNRESET "disconnected before secure TLS connection")',
  EOF_IN_RESPONSE: 'the connection closed in the middle of the response (Node: ECONNRESET "aborted")',
  H2_GOAWAY: 'HTTP/2: the session had received GOAWAY, the stream was never sent',
  H2_REFUSED_STREAM: 'HTTP/2: the server refused the stream (REFUSED_STREAM), it was not processed',
  H2_SESSION_CLOSED: 'HTTP/2: the session closed with the stream in flight, unanswered (no GOAWAY covered it)',
  H2_CLOSED_BEFORE_SESSION:
    'HTTP/2: the server closed the connection before the TLS handshake and the session were complete; the stream was never sent',
  TIMEOUT: 'no response within the request timeout',
};

interface ErrorLike {
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
  cause?: unknown;
}

function chain(...errors: unknown[]): ErrorLike[] {
  const found: ErrorLike[] = [];
  for (let error of errors) {
    for (let depth = 0; depth < 5 && error !== null && typeof error === 'object'; depth++) {
      found.push(error as ErrorLike);
      error = (error as ErrorLike).cause;
    }
  }
  return found;
}

// System errors (those with a syscall) whose kind is not 'other'.
const SYSTEM_KINDS = new Map<string, ErrorKind>([
  ['ECONNRESET', 'reset'],
  ['EPIPE', 'reset'],
  ['ECONNREFUSED', 'refused'],
  ['ETIMEDOUT', 'timeout'],
]);

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|EPROTO$|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

/**
 * Classifies a failed request. `socketError` is the error the connection
 * itself emitted, if any: it carries the syscall when the request's own error
 * does not.
 */
export function classifyError(error: unknown, socketError?: unknown): Classified {
  const errors = chain(socketError, error);
  // A syscall means the kernel said it: the only trustworthy RST.
  for (const e of errors) {
    if (typeof e.syscall !== 'string' || typeof e.code !== 'string') continue;
    if (TLS_CODE.test(e.code)) return { kind: 'tls', code: e.code };
    return { kind: SYSTEM_KINDS.get(e.code) ?? 'other', code: e.code };
  }
  const first = errors.find((e) => e === error) ?? errors[0] ?? {};
  const code = typeof first.code === 'string' ? first.code : 'UNKNOWN';
  const message = typeof first.message === 'string' ? first.message : '';
  if (code === 'ERR_LOAD_TIMEOUT') return { kind: 'timeout', code: 'TIMEOUT' };
  if (code === 'ECONNRESET') {
    if (message.includes('secure TLS connection')) return { kind: 'closed', code: 'EOF_IN_TLS_HANDSHAKE' };
    if (message === 'aborted') return { kind: 'closed', code: 'EOF_IN_RESPONSE' };
    return { kind: 'closed', code: 'EOF_BEFORE_RESPONSE' };
  }
  if (code === 'ERR_HTTP2_GOAWAY_SESSION') return { kind: 'retryable', code: 'H2_GOAWAY' };
  if (code === 'ERR_HTTP2_STREAM_ERROR') {
    if (message.includes('REFUSED_STREAM')) return { kind: 'retryable', code: 'H2_REFUSED_STREAM' };
    const name = /NGHTTP2_([A-Z_]+)/.exec(message)?.[1];
    return { kind: 'other', code: name !== undefined ? `H2_${name}` : code };
  }
  if (code === 'H2_CLOSED_BEFORE_SESSION') return { kind: 'closed', code };
  // "The pending stream has been canceled (caused by: …)": what ended the session says more.
  if (code === 'ERR_HTTP2_STREAM_CANCEL' && first.cause !== null && typeof first.cause === 'object') {
    const cause = classifyError(first.cause);
    if (cause.code !== 'UNKNOWN') return cause;
  }
  if (code === 'ERR_HTTP2_STREAM_CANCEL' || code === 'ERR_HTTP2_INVALID_SESSION' || code === 'H2_SESSION_CLOSED') {
    return { kind: 'closed', code: 'H2_SESSION_CLOSED' };
  }
  for (const e of errors) {
    if (typeof e.code === 'string' && TLS_CODE.test(e.code)) return { kind: 'tls', code: e.code };
  }
  return { kind: 'other', code };
}

/**
 * What a shutdown is judged on: complete responses (any status), RSTs,
 * refusals, and every other failed request (clean closes, TLS errors,
 * timeouts, refused HTTP/2 streams) as `other`.
 */
interface Headline {
  served: number;
  reset: number;
  refused: number;
  other: number;
}

export function headline(counts: { requests: number; responses: number; kinds: Counts }): Headline {
  const { reset, refused } = counts.kinds;
  return { served: counts.responses, reset, refused, other: counts.requests - counts.responses - reset - refused };
}

export function headlineText(counts: { requests: number; responses: number; kinds: Counts }): string {
  const { served, reset, refused, other } = headline(counts);
  return `${served} served · ${reset} reset · ${refused} refused · ${other} other`;
}

/** The entries of `errors` (by code) that {@link headline} counts as `other`. */
export function otherErrors(errors: Record<string, number>): [code: string, count: number][] {
  return Object.entries(errors).filter(([code]) => {
    const kind = SYSTEM_KINDS.get(code);
    return kind !== 'reset' && kind !== 'refused';
  });
}
