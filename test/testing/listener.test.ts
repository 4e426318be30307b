// The kit used for what it is for: a close under load, checked by what the
// clients saw. listener.close() must reset no one (the promise of the
// package); server.close() is not asserted on (it resets most of the time).
import https from 'node:https';
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { listen } from '../../src/index.js';
import { runUnderLoad } from '../../src/testing/index.js';
import { cert } from './servers.js';

describe('runUnderLoad around listener.close()', () => {
  for (const connection of ['new', 'keep-alive'] as const) {
    it(`https, ${connection} connections: no client is reset and the listener closes`, async () => {
      const server = https.createServer(cert(), (_request, response) => response.end('ok\n'));
      const listener = await listen(server, { host: '127.0.0.1', port: 0 });
      try {
        const report = await runUnderLoad({
          url: `https://127.0.0.1:${listener.address().port}/`,
          concurrency: 16,
          duration: 1200,
          connection,
          during: async (context) => {
            const closed = await listener.close({ timeout: 10_000 });
            context.mark('closed');
            return closed;
          },
        });
        expect(report.kinds.reset).toBe(0);
        expect(report.kinds.closed).toBe(0);
        expect(report.responses).toBeGreaterThan(0);
        expect(report.during?.result?.destroyed).toBe(0);
        expect(listener.state).toBe('closed');
        // Whatever failed came after the close and was refused: nothing was sent.
        expect(report.requests - report.responses).toBe(report.kinds.refused + report.kinds.timeout);
      } finally {
        if (listener.state !== 'closed') await listener.close({ timeout: 0, forceTimeout: 0 });
        server.closeAllConnections();
      }
    });
  }
});
