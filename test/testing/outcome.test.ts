import { describe, expect, it } from 'vitest';
import { classifyError, isLoopback } from '../../src/testing/index.js';

const system = (code: string, syscall: string): Error => Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
const node = (code: string, message: string, cause?: unknown): Error =>
  Object.assign(new Error(message, cause === undefined ? {} : { cause }), { code });

describe('classifyError', () => {
  it('a reset is a reset only when the kernel said so', () => {
    expect(classifyError(system('ECONNRESET', 'read'))).toEqual({ kind: 'reset', code: 'ECONNRESET' });
    expect(classifyError(system('EPIPE', 'write'))).toEqual({ kind: 'reset', code: 'EPIPE' });
    expect(classifyError(node('ECONNRESET', 'socket hang up'))).toEqual({ kind: 'closed', code: 'EOF_BEFORE_RESPONSE' });
    expect(
      classifyError(node('ECONNRESET', 'Client network socket disconnected before secure TLS connection was established')),
    ).toEqual({ kind: 'closed', code: 'EOF_IN_TLS_HANDSHAKE' });
    expect(classifyError(node('ECONNRESET', 'aborted'))).toEqual({ kind: 'closed', code: 'EOF_IN_RESPONSE' });
  });

  it('the connection’s own error wins over the request’s', () => {
    expect(classifyError(node('ECONNRESET', 'socket hang up'), system('ECONNRESET', 'read'))).toEqual({
      kind: 'reset',
      code: 'ECONNRESET',
    });
  });

  it('HTTP/2 wrappers are classified by their cause', () => {
    const cancelled = (cause: unknown): Error => node('ERR_HTTP2_STREAM_CANCEL', 'The pending stream has been canceled', cause);
    expect(classifyError(cancelled(system('ECONNREFUSED', 'connect')))).toEqual({ kind: 'refused', code: 'ECONNREFUSED' });
    expect(classifyError(cancelled(system('ECONNRESET', 'read')))).toEqual({ kind: 'reset', code: 'ECONNRESET' });
    expect(
      classifyError(cancelled(node('ECONNRESET', 'Client network socket disconnected before secure TLS connection was established'))),
    ).toEqual({ kind: 'closed', code: 'EOF_IN_TLS_HANDSHAKE' });
    expect(classifyError(node('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_REFUSED_STREAM'))).toEqual({
      kind: 'retryable',
      code: 'H2_REFUSED_STREAM',
    });
    expect(classifyError(node('ERR_HTTP2_GOAWAY_SESSION', 'New streams cannot be created after receiving a GOAWAY'))).toEqual({
      kind: 'retryable',
      code: 'H2_GOAWAY',
    });
    expect(classifyError(node('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_INTERNAL_ERROR'))).toEqual({
      kind: 'other',
      code: 'H2_INTERNAL_ERROR',
    });
  });

  it('refusals, timeouts, TLS errors and the rest', () => {
    expect(classifyError(system('ECONNREFUSED', 'connect')).kind).toBe('refused');
    expect(classifyError(system('ETIMEDOUT', 'connect')).kind).toBe('timeout');
    expect(classifyError(node('ERR_LOAD_TIMEOUT', 'No response'))).toEqual({ kind: 'timeout', code: 'TIMEOUT' });
    expect(classifyError(node('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')).kind).toBe('tls');
    expect(classifyError(node('ERR_TLS_CERT_ALTNAME_INVALID', 'altname')).kind).toBe('tls');
    expect(classifyError(system('EPROTO', 'write')).kind).toBe('tls');
    expect(classifyError(system('EADDRNOTAVAIL', 'connect'))).toEqual({ kind: 'other', code: 'EADDRNOTAVAIL' });
    expect(classifyError('weird')).toEqual({ kind: 'other', code: 'UNKNOWN' });
  });
});

describe('isLoopback', () => {
  it('knows 127/8, ::1 and IPv4-mapped loopback, nothing else', () => {
    for (const address of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1']) expect(isLoopback(address)).toBe(true);
    for (const address of ['10.0.0.1', '192.168.1.1', '::', '0.0.0.0', '::ffff:10.0.0.1', 'localhost', '2001:db8::1']) {
      expect(isLoopback(address)).toBe(false);
    }
  });
});
