import crypto from 'node:crypto';
import https from 'node:https';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../../src/testing/index.js';

describe('selfSignedCertificate', () => {
  it('makes a P-256 certificate that signs itself, for localhost and the loopback addresses', () => {
    const { key, cert } = selfSignedCertificate();
    const x509 = new crypto.X509Certificate(cert);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.checkPrivateKey(crypto.createPrivateKey(key))).toBe(true);
    expect(x509.subject).toBe('CN=localhost');
    expect(x509.checkHost('localhost')).toBe('localhost');
    expect(x509.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x509.checkIP('::1')).toBe('::1');
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(new Date(x509.validTo).getTime()).toBeGreaterThan(Date.now() + 6 * 24 * 3600 * 1000);
  });

  it('takes other names, IPv4-mapped addresses included', () => {
    const { cert } = selfSignedCertificate({ names: ['app.test', '::ffff:127.0.0.1'], days: 1 });
    const x509 = new crypto.X509Certificate(cert);
    expect(x509.subject).toBe('CN=app.test');
    expect(x509.checkHost('app.test')).toBe('app.test');
    expect(x509.subjectAltName).toContain('IP Address:0:0:0:0:0:FFFF:7F00:1');
  });

  it('is trusted by a TLS client given it as ca', async () => {
    const pair = selfSignedCertificate();
    const server = https.createServer(pair, (_request, response) => response.end('verified'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, servername: 'localhost', ca: pair.cert, agent: false }, (response) => {
            let text = '';
            response.on('data', (chunk: Buffer) => (text += chunk.toString()));
            response.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      expect(body).toBe('verified');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('rejects bad options', () => {
    expect(() => selfSignedCertificate({ names: [] })).toThrow(TypeError);
    expect(() => selfSignedCertificate({ days: 0 })).toThrow(RangeError);
  });
});
