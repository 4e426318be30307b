// Listener against the fake binding: the order of the close, and the corners
// the property test found, each as a fixed scenario.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ListenSocket, Listener, type CloseReport } from '../../src/index.js';
import { FakeBinding, FakeSink } from './fake-binding.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

async function fakeListener(sink = new FakeSink()) {
  const binding = new FakeBinding();
  const listener = new Listener(await ListenSocket.open({ host: '127.0.0.1' }, binding), sink);
  const errors: Error[] = [];
  const events: string[] = [];
  listener.on('error', (error: Error) => errors.push(error));
  for (const event of ['draining', 'accepting', 'close']) listener.on(event, () => events.push(event));
  return { listener, handle: binding.last, sink, errors, events };
}

/** Completes `n` handshakes into the fake queue. */
function queue(handle: FakeBinding['last'], n: number): void {
  for (let i = 0; i < n; i++) {
    expect(handle.syn()).toBe('handshaking');
    handle.completeHandshake();
  }
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('Listener on the fake binding', () => {
  test('an idle close: gate first, one sweep-and-shutdown step, the fd closed, no timer left', async () => {
    const { listener, handle, sink, events, errors } = await fakeListener();
    handle.ops.length = 0;
    const report = await listener.close();
    expect(handle.ops).toEqual(['gate on', 'queueDepth', 'handshakeRequests', 'sweep+shutdown', 'close']);
    expect(events).toEqual(['draining', 'close']);
    expect(report).toMatchObject({ queuedAtClose: 0, openAtClose: 0, accepted: 0, served: 0, ended: 0, destroyed: 0 });
    expect(vi.getTimerCount()).toBe(0);
    expect([listener.state, listener.count, handle.closeCalls, sink.closedCalls]).toEqual(['closed', 0, 1, 1]);
    expect(errors).toEqual([]);
  });

  test('the queue is accepted in the sweep, and phase 2 waits for the last release', async () => {
    const { listener, handle, sink, events } = await fakeListener();
    listener.pause();
    queue(handle, 3);
    const closing = listener.close();
    expect(handle.resetQueued).toBe(0);
    expect(listener.count).toBe(4);
    expect([...sink.delivered.values()]).toEqual([true, true, true]);
    const open = [...sink.open];
    open[0]!.destroy();
    open[1]!.destroy();
    await settle();
    expect([listener.state, listener.count, handle.closed]).toEqual(['draining', 2, false]);
    open[2]!.destroy();
    const report = await closing;
    expect(report).toMatchObject({ queuedAtClose: 3, accepted: 3, served: 3 });
    expect(events).toEqual(['draining', 'close']);
    expect(handle.closed).toBe(true);
  });

  test.each([
    ["the listener's 'connection' event", 'listener'],
    ["the server's handler (the sink's deliver)", 'sink'],
  ] as const)('close() from %s in the middle of an accept batch drains the rest of the batch once', async (_name, where) => {
    const sink = new FakeSink();
    const { listener, handle, errors } = await fakeListener(sink);
    let closing: Promise<CloseReport> | undefined;
    const closeOnce = (): void => {
      closing ??= listener.close();
    };
    if (where === 'listener') listener.once('connection', closeOnce);
    else sink.onDeliver = closeOnce;
    queue(handle, 4);
    handle.poll();

    expect(closing).toBeDefined();
    expect(sink.violations).toEqual([]);
    expect(listener.count).toBe(5);
    for (const connection of [...sink.open]) connection.destroy();
    const report = await closing!;
    // The whole batch was accepted (and counted) before the close began; the
    // connections after the one whose handler closed are delivered in
    // draining mode, and none of them is also in draining(true)'s set.
    expect(report).toMatchObject({ queuedAtClose: 0, openAtClose: 4, accepted: 0, served: 4 });
    expect([...sink.delivered.values()]).toEqual(where === 'listener' ? [true, true, true, true] : [false, true, true, true]);
    expect(sink.violations).toEqual([]);
    expect(errors).toEqual([]);
  });

  test('handshakes still in SYN_RECV at the deadline: one sweep, no accept on the shut-down socket, no error', async () => {
    const { listener, handle, sink, errors } = await fakeListener();
    queue(handle, 1);
    handle.poll();
    handle.syn();
    const closing = listener.close({ timeout: 1000, forceTimeout: 1000 });
    expect(listener.state).toBe('draining');
    // The handshake never completes; the deadline shuts the socket down.
    await vi.advanceTimersByTimeAsync(1000);
    expect(handle.listening).toBe(false);
    expect(handle.resetHandshakes).toBe(1);
    expect([...sink.open][0]!.endedGently).toBe(true);
    // Past the next handshake re-check, while the ended connection lingers.
    await vi.advanceTimersByTimeAsync(500);
    expect(handle.ops.filter((op) => op.startsWith('sweep'))).toEqual(['sweep+shutdown']);
    expect(errors).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    const report = await closing;
    expect(report).toMatchObject({ handshakingAtClose: 1, openAtClose: 1, ended: 1, destroyed: 1, served: 0 });
    expect(vi.getTimerCount()).toBe(0);
  });

  test('resume() while waiting for a handshake aborts the drain; the next close() starts afresh', async () => {
    const { listener, handle, sink, events, errors } = await fakeListener();
    handle.syn();
    const first = listener.close();
    const aborted = first.catch((error: { code?: string }) => error.code);
    expect(listener.state).toBe('draining');
    listener.resume();
    expect(await aborted).toBe('ERR_CLOSE_ABORTED');
    expect([listener.state, handle.gated, handle.listening]).toEqual(['accepting', false, true]);
    handle.completeHandshake();
    handle.poll();
    expect([...sink.delivered.values()]).toEqual([false]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(handle.ops.filter((op) => op.startsWith('sweep'))).toEqual([]);

    const second = listener.close();
    expect(second).not.toBe(first);
    [...sink.open][0]!.destroy();
    await second;
    expect(events).toEqual(['draining', 'accepting', 'draining', 'close']);
    expect(sink.drainingCalls).toEqual([true, false, true]);
    expect(errors).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
