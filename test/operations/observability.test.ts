// What a listener tells an operator: its lifecycle on node:diagnostics_channel
// (the event sequence and the close's report as published), the stats()
// snapshot through a scripted scenario, and expedite() — the forcing a
// second signal uses — on a close under way, on a replaced generation, and
// on an accepting listener.
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type CloseReport, type ListenerStats } from '../../src/index.js';
import { Opened, rawGet, waitFor, type RawClient } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const NAMES = ['listen', 'pause', 'resume', 'draining', 'close', 'replace', 'handover'] as const;

/** Every lifecycle message published while subscribed, as [name, payload]; unsubscribed at dispose. */
function subscribeAll(): [string, Record<string, unknown>][] {
  const seen: [string, Record<string, unknown>][] = [];
  for (const name of NAMES) {
    const onMessage = (message: unknown): void => {
      seen.push([name, message as Record<string, unknown>]);
    };
    diagnostics.subscribe(`graceful-listener:${name}`, onMessage);
    opened.cleanup(() => diagnostics.unsubscribe(`graceful-listener:${name}`, onMessage));
  }
  return seen;
}

/** An http server: /hold is answered only at release(), everything else at once. */
function holdingServer(): { server: http.Server; release: () => void; holding: () => number } {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((request, response) => {
    if (request.url === '/hold') held.push(response);
    else response.end('ok');
  });
  return { server, release: () => held.splice(0).forEach((response) => response.end('released')), holding: () => held.length };
}

async function keepAlive(port: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(rawGet('/'));
  expect(await client.response()).toMatchObject({ status: 200, headers: { connection: 'keep-alive' } });
  return client;
}

async function holding(port: number, holds: () => number, count: number): Promise<RawClient> {
  const client = opened.raw(port);
  client.socket.write(rawGet('/hold'));
  await waitFor('the held request', () => holds() === count);
  return client;
}

describe('lifecycle events on node:diagnostics_channel', () => {
  test('listen → pause → resume → draining → close, each with its listener; close carries the report', async () => {
    const seen = subscribeAll();
    const listener = opened.listener(await listen(http.createServer((_q, s) => s.end('ok')), { host: '127.0.0.1' }));
    listener.pause();
    listener.pause();
    listener.resume();
    // Neither paused nor draining: nothing to resume, nothing published.
    listener.resume();
    const report = await opened.close(listener);
    expect(seen.map(([name]) => name)).toEqual(['listen', 'pause', 'resume', 'draining', 'close']);
    expect(seen.every(([, payload]) => payload.listener === listener)).toBe(true);
    expect(seen[2]![1]).toEqual({ listener, aborted: false });
    expect(seen[4]![1]).toEqual({ listener, report });
    expect((seen[4]![1].report as CloseReport).mode).toBe('close');
  });

  test('a drain aborted by resume(), and replace() with the retired server\'s report', async () => {
    const seen = subscribeAll();
    const { server, release, holding: holds } = holdingServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const port = listener.address().port;
    // A held request keeps the drain open, so that resume() can abort it.
    const client = await holding(port, holds, 1);
    const closing = listener.close();
    closing.catch(() => {});
    listener.resume();
    await expect(closing).rejects.toMatchObject({ code: 'ERR_CLOSE_ABORTED' });
    const retired = listener.replace(http.createServer((_q, s) => s.end('new')));
    release();
    await client.response();
    expect(seen.map(([name]) => name)).toEqual(['listen', 'draining', 'resume', 'replace']);
    expect(seen[2]![1]).toEqual({ listener, aborted: true });
    expect(seen[3]![1].retired).toBe(retired);
    expect(await retired).toMatchObject({ openAtClose: 1 });
    await opened.close(listener);
  });

  test('nothing is published to a channel after its last subscriber left', async () => {
    const seen: unknown[] = [];
    const onMessage = (message: unknown): void => void seen.push(message);
    diagnostics.subscribe('graceful-listener:listen', onMessage);
    const first = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
    diagnostics.unsubscribe('graceful-listener:listen', onMessage);
    expect(diagnostics.channel('graceful-listener:listen').hasSubscribers).toBe(false);
    const second = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
    expect(seen).toEqual([{ listener: first }]);
    await Promise.all([opened.close(first), opened.close(second)]);
  });
});

describe('stats()', () => {
  const pick = (stats: ListenerStats): Omit<ListenerStats, 'backlog'> => {
    const { backlog: _backlog, ...rest } = stats;
    return rest;
  };

  test('a scripted scenario: served, paused with a client queued, closed with a held request forced', async () => {
    const { server, holding: holds } = holdingServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1', backlog: 64, http: { quietWindow: 50 } }));
    const port = listener.address().port;
    const fresh = listener.stats();
    expect(fresh.backlog).toBeGreaterThan(0);
    expect(pick(fresh)).toEqual({
      state: 'accepting', paused: false, count: 1, accepted: 0, active: [0], queued: 0, servedWhileDraining: 0, ended: 0, destroyed: 0,
    });

    await keepAlive(port);
    await holding(port, holds, 1);
    expect(pick(listener.stats())).toMatchObject({ count: 3, accepted: 2, active: [2], queued: 0 });

    listener.pause();
    const queuedClient = opened.raw(port);
    await waitFor('the third client in the accept queue', () => listener.stats().queued === 1);
    expect(pick(listener.stats())).toMatchObject({ paused: true, count: 3, accepted: 2, active: [2], queued: 1 });

    const closing = listener.close({ timeout: 60_000 });
    // The sweep accepted the queued client inside close().
    expect(pick(listener.stats())).toMatchObject({ state: 'draining', count: 4, accepted: 3, active: [3], queued: 0, servedWhileDraining: 1 });
    // The idle keep-alive client and the queued one end after the quiet window; the held request stays.
    await waitFor('only the held request left', () => listener.count === 2);
    expect(queuedClient.errors).toEqual([]);

    // A large forceTimeout: the held connection ends gently (the client answers the FIN), nothing is destroyed.
    expect(listener.expedite({ forceTimeout: 60_000 })).toBe(closing);
    const report = await opened.settled(listener, closing);
    expect(report).toMatchObject({ openAtClose: 2, accepted: 1, served: 2, ended: 1, destroyed: 0 });
    expect(listener.stats()).toEqual({
      state: 'closed', paused: true, count: 0, accepted: 3, active: [], queued: 0, backlog: 0, servedWhileDraining: 1, ended: 1, destroyed: 0,
    });
  });

  test('destroy(): destroyed counts', async () => {
    const { server, holding: holds } = holdingServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    await holding(listener.address().port, holds, 1);
    await opened.settled(listener, listener.destroy());
    expect(listener.stats()).toMatchObject({ state: 'closed', accepted: 1, ended: 0, destroyed: 1 });
  });
});

describe('expedite()', () => {
  test('a close under way with long deadlines: the held request is ended now, the report says so', async () => {
    const { server, holding: holds } = holdingServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    const client = await holding(listener.address().port, holds, 1);
    const closing = listener.close({ timeout: 60_000, forceTimeout: 60_000 });
    await waitFor('draining', () => listener.state === 'draining');
    expect(listener.expedite()).toBe(closing);
    const report = await opened.settled(listener, closing);
    expect(report).toMatchObject({ openAtClose: 1, served: 0, ended: 1 });
    await client.finished();
    expect(client.data).not.toContain('released');
    // Closed: the same promise, nothing more.
    expect(listener.expedite()).toBe(closing);
  });

  test('a replaced generation still draining is cut too; on an accepting listener it starts the close', async () => {
    const { server, holding: holds } = holdingServer();
    const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
    await holding(listener.address().port, holds, 1);
    const retired = listener.replace(http.createServer(), { timeout: 60_000, forceTimeout: 60_000 });
    const closing = listener.expedite({ forceTimeout: 60_000 });
    expect(listener.state).toBe('draining');
    expect(await retired).toMatchObject({ openAtClose: 1, served: 0, ended: 1, destroyed: 0 });
    expect(await opened.settled(listener, closing)).toMatchObject({ openAtClose: 1, ended: 1, destroyed: 0 });
  });

  test('bad input', async () => {
    const listener = opened.listener(await listen(http.createServer(), { host: '127.0.0.1' }));
    expect(() => listener.expedite(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => listener.expedite({ forceTimeout: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(listener.state).toBe('accepting');
    await opened.close(listener);
  });
});
