import dns from 'node:dns/promises';
import net from 'node:net';
import { invalidArgValue } from '../core/errors.js';
import { LoadError } from './errors.js';

/** Where the load goes: the URL as given, and the address it resolved to once. */
export interface Target {
  url: URL;
  /** The address connected to (every request uses it: no further DNS lookups). */
  address: string;
  family: 4 | 6;
  port: number;
  secure: boolean;
  /** SNI name: the URL's host name unless it is an IP address. */
  servername: string | undefined;
  /** `host[:port]` for the Host header and `:authority`. */
  authority: string;
}

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

export function isLoopback(address: string): boolean {
  const family = net.isIP(address);
  return family !== 0 && loopback.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Parses and resolves the target. Unless `allowRemote`, every address the
 * name resolves to must be loopback: a load test must not leave the machine
 * by accident.
 */
export async function resolveTarget(input: string | URL, allowRemote: boolean): Promise<Target> {
  let url: URL;
  try {
    url = new URL(input);
  } catch (error) {
    throw invalidArgValue('options.url', String(input), 'must be an absolute http: or https: URL', error);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidArgValue('options.url', url.href, 'must be an http: or https: URL');
  }
  const secure = url.protocol === 'https:';
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: { address: string; family: number }[];
  if (net.isIP(hostname) !== 0) {
    addresses = [{ address: hostname, family: net.isIP(hostname) }];
  } else {
    addresses = await dns.lookup(hostname, { all: true });
  }
  if (!allowRemote) {
    const remote = addresses.filter(({ address }) => !isLoopback(address));
    if (remote.length > 0 || addresses.length === 0) {
      throw new LoadError(
        'ERR_LOAD_REMOTE_TARGET',
        `${url.host} resolves to ${addresses.map((a) => a.address).join(', ') || 'nothing'}, not a loopback address; ` +
          'pass allowRemote: true (--allow-remote) only for a server you own',
      );
    }
  }
  const { address, family } = addresses[0]!;
  return {
    url,
    address,
    family: family as 4 | 6,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    secure,
    servername: net.isIP(hostname) === 0 ? hostname : undefined,
    authority: url.host,
  };
}
