// examples/prometheus.mjs as a user runs it: a child process serving the
// app, /readyz and /metrics on one listener; its /metrics is scraped over
// loopback and the metric names and values checked; SIGTERM drains it, exit
// 0. Imported in this process, its registry shows a client waiting in the
// accept queue of a paused listener. Needs dist/ (the example imports the
// package by name).
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import type { ServerListener } from '../../src/index.js';
import { EventChild, Opened, rawGet, repoRoot, request, requireDist, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

const EXAMPLE = path.join(repoRoot, 'examples', 'prometheus.mjs');

/** The samples of a Prometheus text exposition, by series (name and labels). */
function samples(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return values;
}

test('run as a program: /metrics over loopback has every metric with the values of what happened; SIGTERM exits 0', async () => {
  requireDist();
  const child = new EventChild<{ event: string; metrics?: string }>(
    opened.child(spawn(process.execPath, [EXAMPLE], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })),
  );
  // The example prints {metrics: url} (no `event` field): take its first line.
  await child.events.until((items) => items.length > 0, () => `the example's URL (stderr: ${child.stderr})`);
  const url = new URL(child.events.items[0]!.metrics!);
  const port = Number(url.port);
  // Two requests to the app and the scrape on one keep-alive connection, after one that came and went.
  expect((await request(port, { path: '/' })).body).toBe('hello\n');
  const client = opened.raw(port);
  for (let i = 0; i < 2; i++) {
    client.socket.write(rawGet('/'));
    expect(await client.response()).toMatchObject({ status: 200, body: 'hello\n' });
  }
  client.socket.write(rawGet('/metrics'));
  const scrape = await client.response();
  expect(scrape.status).toBe(200);
  expect(scrape.headers['content-type']).toMatch(/^text\/plain/);
  const values = samples(scrape.body);
  expect(values).toMatchObject({
    'graceful_listener_state{state="accepting"}': 1,
    graceful_listener_generations: 1,
    graceful_listener_queued: 0,
    graceful_listener_accepted_total: 2,
    graceful_listener_served_while_draining_total: 0,
    graceful_listener_ended_total: 0,
    graceful_listener_destroyed_total: 0,
  });
  expect(values.graceful_listener_backlog).toBeGreaterThan(0);
  // This connection, and the first one unless its close was already seen.
  expect([1, 2]).toContain(values.graceful_listener_connections);
  expect((await request(port, { path: '/readyz' })).status).toBe(200);

  child.process.kill('SIGTERM');
  // The drain ends the idle keep-alive connection gently.
  await client.finished();
  expect(await child.exit()).toEqual({ code: 0, signal: null });
  expect(client.errors).toEqual([]);
  expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
});

/** What the example's start() returns (from the package's dist build). */
interface Example {
  listener: ServerListener;
  registry: { metrics(): Promise<string> };
}

test('imported: a paused listener with a client in its accept queue shows queued 1', async () => {
  requireDist();
  const { start } = (await import(EXAMPLE)) as { start: (options: object) => Promise<Example> };
  const { listener, registry } = await start({ port: 0, signals: false });
  opened.cleanup(() => (listener.state === 'closed' ? undefined : listener.destroy()));
  listener.pause();
  const client = opened.track(net.connect({ port: listener.address().port, host: '127.0.0.1' }));
  client.on('error', () => {});
  await waitFor('the client in the accept queue', () => listener.pending().queued === 1);
  const values = samples(await registry.metrics());
  expect(values).toMatchObject({ graceful_listener_queued: 1, graceful_listener_accepted_total: 0, graceful_listener_connections: 0 });
  await listener.close();
  expect(samples(await registry.metrics())).toMatchObject({
    'graceful_listener_state{state="closed"}': 1,
    graceful_listener_queued: 0,
    graceful_listener_accepted_total: 1,
    graceful_listener_served_while_draining_total: 1,
  });
});
