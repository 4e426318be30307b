import crypto from 'node:crypto';
import net from 'node:net';
import { validateInteger, validateObject } from '../core/validate.js';

/** Options for {@link selfSignedCertificate}. */
export interface CertificateOptions {
  /**
   * DNS names and IP addresses the certificate is valid for (subjectAltName);
   * the first is also the subject's common name.
   * @default ['localhost', '127.0.0.1', '::1']
   */
  names?: string[];
  /** @default 7 */
  days?: number;
}

/** A PEM key and certificate, as `tls.createServer()` takes them. */
export interface KeyPair {
  key: string;
  cert: string;
}

// Node can make keys and sign, but not certificates: the few DER structures
// of an X.509 v3 certificate (RFC 5280 §4.1) are built here instead of
// shelling out to openssl or pulling in an ASN.1 library.
function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let rest = n; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const sequence = (...content: Buffer[]): Buffer => tlv(0x30, ...content);
const set = (...content: Buffer[]): Buffer => tlv(0x31, ...content);
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);
const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
const bitString = (content: Buffer): Buffer => tlv(0x03, Buffer.from([0]), content);
const boolean = (value: boolean): Buffer => tlv(0x01, Buffer.from([value ? 0xff : 0]));

function oid(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const bytes = [first * 40 + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) base128.unshift(0x80 | (v & 0x7f));
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function integer(bytes: Buffer): Buffer {
  // DER INTEGERs are signed: a leading 1 bit needs a zero byte in front.
  return tlv(0x02, (bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

// UTCTime (YYMMDDHHMMSSZ) covers 1950–2049; GeneralizedTime after.
function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${digits}Z`));
}

function ipBytes(address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  // An IPv4-mapped tail (::ffff:127.0.0.1) is two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const text = dotted === null ? address : address.slice(0, dotted.index) +
    `${((+dotted[1]! << 8) | +dotted[2]!).toString(16)}:${((+dotted[3]! << 8) | +dotted[4]!).toString(16)}`;
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return Buffer.concat(groups.map((group) => Buffer.from(group.padStart(4, '0'), 'hex')));
}

/**
 * A self-signed ECDSA P-256 certificate made with `node:crypto` alone, for
 * https/http2 servers in tests and demos. Nothing trusts it: clients pass it
 * as `ca`, or skip verification.
 */
export function selfSignedCertificate(options: CertificateOptions = {}): KeyPair {
  validateObject('options', options);
  const names = options.names ?? ['localhost', '127.0.0.1', '::1'];
  if (!Array.isArray(names) || names.length === 0 || !names.every((name) => typeof name === 'string' && name !== '')) {
    throw new TypeError('options.names must be a non-empty array of host names and IP addresses');
  }
  const days = validateInteger('options.days', options.days ?? 7, 1, 3650);

  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaWithSha256 = sequence(oid('1.2.840.10045.4.3.2'));
  const name = sequence(set(sequence(oid('2.5.4.3'), utf8String(names[0]!))));
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + days * 24 * 60 * 60 * 1000);
  const altNames = names.map((entry) =>
    net.isIP(entry) !== 0 ? tlv(0x87, ipBytes(entry)) : tlv(0x82, Buffer.from(entry, 'ascii')),
  );
  const extensions = sequence(
    // basicConstraints, critical: CA (a self-signed certificate is its own trust anchor).
    sequence(oid('2.5.29.19'), boolean(true), octetString(sequence(boolean(true)))),
    // keyUsage, critical: digitalSignature, keyCertSign.
    sequence(oid('2.5.29.15'), boolean(true), octetString(tlv(0x03, Buffer.from([0x02, 0x84])))),
    // extKeyUsage: serverAuth.
    sequence(oid('2.5.29.37'), octetString(sequence(oid('1.3.6.1.5.5.7.3.1')))),
    sequence(oid('2.5.29.17'), octetString(sequence(...altNames))),
  );
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ecdsaWithSha256,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, extensions),
  );
  const signature = crypto.sign('sha256', tbs, privateKey);
  const der = sequence(tbs, ecdsaWithSha256, bitString(signature));
  const base64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: `-----BEGIN CERTIFICATE-----\n${base64}-----END CERTIFICATE-----\n`,
  };
}
