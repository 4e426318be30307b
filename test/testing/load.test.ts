// The load kit's counts, checked against servers whose behaviour is known:
// each outcome the kit reports must be the one the server produced, no more,
// no less. Short loads, few clients, loopback only.
import { afterEach, describe, expect, it } from 'vitest';
import { LoadError, runUnderLoad, selfSignedCertificate, type LoadReport } from '../../src/testing/index.js';
import {
  cert,
  http2Server,
  httpsServer,
  refusingUrl,
  scriptedServer,
  silentServer,
  statusServer,
  type TestServer,
} from './servers.js';

const opened: TestServer[] = [];
async function track(server: Promise<TestServer>): Promise<TestServer> {
  const s = await server;
  opened.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((server) => server.close()));
});

function sum(report: LoadReport<unknown>, key: 'ok' | 'reset' | 'refused' | 'closed' | 'timeout'): number {
  return report.timeline.buckets.reduce((total, bucket) => total + bucket[key], 0);
}

function failures(report: LoadReport<unknown>): number {
  return Object.values(report.kinds).reduce((a, b) => a + b, 0);
}

describe('runUnderLoad counts what the server did', () => {
  it('a server that resets its first 5 connections shows exactly 5 resets', async () => {
    const server = await track(scriptedServer({ resets: 5 }));
    const report = await runUnderLoad({ url: server.url, concurrency: 4, duration: 500 });
    expect(report.kinds.reset).toBe(5);
    expect(report.errors.ECONNRESET).toBe(5);
    expect(failures(report)).toBe(5);
    expect(report.responses).toBe(report.requests - 5);
    expect(report.responses).toBeGreaterThan(0);
    expect(server.connections).toBe(report.requests);
    expect(sum(report, 'reset')).toBe(5);
    expect(sum(report, 'ok')).toBe(report.ok);
  });

  it('over TLS too, resets before the handshake are resets', async () => {
    const server = await track(scriptedServer({ resets: 3, tls: true }));
    const report = await runUnderLoad({ url: server.url, concurrency: 3, duration: 500 });
    expect(report.kinds.reset).toBe(3);
    expect(failures(report)).toBe(3);
    expect(report.responses).toBeGreaterThan(0);
  });

  it('a clean close (FIN) before the answer is not a reset, although Node calls it ECONNRESET', async () => {
    const server = await track(scriptedServer({ fins: 4 }));
    const report = await runUnderLoad({ url: server.url, concurrency: 2, duration: 400 });
    expect(report.kinds.reset).toBe(0);
    expect(report.kinds.closed).toBe(4);
    expect(report.errors.EOF_BEFORE_RESPONSE).toBe(4);
    expect(report.examples.EOF_BEFORE_RESPONSE).toBe('socket hang up');
    expect(failures(report)).toBe(4);
  });

  it('a port nothing listens on shows refusals only', async () => {
    const report = await runUnderLoad({ url: await refusingUrl(), concurrency: 2, duration: 300, backoff: 10 });
    expect(report.requests).toBeGreaterThan(0);
    expect(report.kinds.refused).toBe(report.requests);
    expect(report.errors).toEqual({ ECONNREFUSED: report.requests });
    expect(report.responses).toBe(0);
    expect(report.latency.count).toBe(0);
  });

  it('counts responses by status: 503s are answers, not connection errors', async () => {
    const server = await track(statusServer(7));
    const report = await runUnderLoad({ url: server.url, concurrency: 3, duration: 300, connection: 'keep-alive' });
    expect(report.status['503']).toBe(7);
    expect(report.httpErrors).toBe(7);
    expect(report.ok).toBe(report.responses - 7);
    expect(failures(report)).toBe(0);
  });

  it('keep-alive keeps at most one connection per client; new opens one per request', async () => {
    const kept = await track(statusServer(0));
    const keepAlive = await runUnderLoad({ url: kept.url, concurrency: 4, duration: 300, connection: 'keep-alive' });
    expect(keepAlive.responses).toBeGreaterThan(8);
    expect(kept.connections).toBeLessThanOrEqual(4);

    const fresh = await track(statusServer(0));
    const newConnections = await runUnderLoad({ url: fresh.url, concurrency: 4, duration: 300, connection: 'new' });
    expect(fresh.connections).toBe(newConnections.requests);
  });

  it('https with the server certificate as ca verifies it; a wrong ca is a TLS error on every request', async () => {
    const server = await track(httpsServer());
    const verified = await runUnderLoad({ url: server.url, concurrency: 2, duration: 300, ca: cert().cert });
    expect(verified.responses).toBeGreaterThan(0);
    expect(failures(verified)).toBe(0);

    const wrong = await runUnderLoad({
      url: server.url,
      concurrency: 2,
      duration: 300,
      ca: selfSignedCertificate().cert,
      backoff: 10,
    });
    expect(wrong.requests).toBeGreaterThan(0);
    expect(wrong.kinds.tls).toBe(wrong.requests);
  });

  it('a server that never answers gives timeouts', async () => {
    const server = await track(silentServer());
    const report = await runUnderLoad({ url: server.url, concurrency: 2, duration: 200, requestTimeout: 300 });
    expect(report.requests).toBeGreaterThan(0);
    expect(report.kinds.timeout).toBe(report.requests);
    expect(report.errors.TIMEOUT).toBe(report.requests);
  });

  it('HTTP/2: one session per client with keep-alive, one per request with new', async () => {
    const server = await track(http2Server());
    const kept = await runUnderLoad({ url: server.url, protocol: 'h2', concurrency: 3, duration: 300, connection: 'keep-alive' });
    expect(kept.responses).toBeGreaterThan(3);
    expect(failures(kept)).toBe(0);
    expect(server.connections).toBeLessThanOrEqual(3);

    const plain = await track(http2Server({ plain: true }));
    const fresh = await runUnderLoad({ url: plain.url, protocol: 'h2', concurrency: 3, duration: 300, connection: 'new' });
    expect(fresh.responses).toBeGreaterThan(0);
    expect(failures(fresh)).toBe(0);
    expect(plain.connections).toBe(fresh.requests);
  });

  it('HTTP/2 streams refused with REFUSED_STREAM are retryable, counted exactly', async () => {
    const server = await track(http2Server({ refuse: 6 }));
    const report = await runUnderLoad({ url: server.url, protocol: 'h2', concurrency: 2, duration: 300, connection: 'keep-alive' });
    expect(report.kinds.retryable).toBe(6);
    expect(report.errors.H2_REFUSED_STREAM).toBe(6);
    expect(failures(report)).toBe(6);
  });
});

describe('runUnderLoad bounds and during()', () => {
  it('calls during() once with the load running, and returns its result and marks', async () => {
    const server = await track(statusServer(0));
    let calls = 0;
    const report = await runUnderLoad({
      url: server.url,
      concurrency: 2,
      duration: 600,
      duringAt: 300,
      connection: 'keep-alive',
      during: async (context) => {
        calls++;
        context.mark('reconfigured');
        return { answer: 42 };
      },
    });
    expect(calls).toBe(1);
    expect(report.during?.result).toEqual({ answer: 42 });
    expect(report.marks.map((m) => m.label)).toEqual(['reconfigured']);
    const at = report.during!.atMs;
    const before = report.timeline.buckets.filter((b) => b.t + report.timeline.bucketMs <= at).reduce((n, b) => n + b.ok, 0);
    const after = report.timeline.buckets.filter((b) => b.t >= at).reduce((n, b) => n + b.ok, 0);
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(0);
  });

  it('rejects with ERR_DURING_FAILED, the report attached, when during() throws', async () => {
    const server = await track(statusServer(0));
    const failure = await runUnderLoad({
      url: server.url,
      concurrency: 1,
      duration: 200,
      during: () => {
        throw new Error('reconfigure failed');
      },
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(LoadError);
    expect((failure as LoadError).code).toBe('ERR_DURING_FAILED');
    expect(((failure as LoadError).cause as Error).message).toBe('reconfigure failed');
    expect(((failure as LoadError).report as LoadReport).responses).toBeGreaterThan(0);
  });

  it('stops at maxRequests', async () => {
    const server = await track(statusServer(0));
    const report = await runUnderLoad({ url: server.url, concurrency: 4, duration: 10_000, maxRequests: 25 });
    expect(report.requests).toBe(25);
    expect(report.stoppedBy).toBe('maxRequests');
  });

  it('an aborted signal stops the load', async () => {
    const server = await track(statusServer(0));
    const report = await runUnderLoad({ url: server.url, duration: 10_000, signal: AbortSignal.abort() });
    expect(report.requests).toBe(0);
    expect(report.stoppedBy).toBe('signal');
  });

  it('samples land in the timeline', async () => {
    const server = await track(statusServer(0));
    let n = 0;
    const report = await runUnderLoad({ url: server.url, concurrency: 1, duration: 300, sample: () => ({ n: n++ }) });
    const samples = report.timeline.buckets.flatMap((b) => (b.samples === undefined ? [] : [b.samples.n!]));
    expect(samples.length).toBeGreaterThan(0);
    expect(samples).toEqual([...samples].sort((a, b) => a - b));
  });

  it('refuses targets that are not loopback, before any connection', async () => {
    for (const url of ['http://192.0.2.1:9/', 'https://[2001:db8::1]/', 'http://10.0.0.1/']) {
      await expect(runUnderLoad({ url, duration: 100 })).rejects.toMatchObject({ code: 'ERR_LOAD_REMOTE_TARGET' });
    }
  });

  it('validates its options', async () => {
    const url = 'http://127.0.0.1:9/';
    await expect(runUnderLoad({ url, concurrency: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(runUnderLoad({ url, duration: 1.5 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(runUnderLoad({ url, connection: 'sometimes' as 'new' })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    await expect(runUnderLoad({ url: 'ftp://127.0.0.1/' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(runUnderLoad({ url, duringAt: 10, duration: 5 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });
});
