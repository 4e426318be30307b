// Listener against the fake binding: the order of the close, and the corners
// the property test found, each as a fixed scenario.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ListenSocket, Listener, type CloseReport } from '../../src/index.js';
import { FakeBinding, FakeSink, systemError } from './fake-binding.js';

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

  test('a failed SYN-gate attach does not throw out of close(): the queue is swept without the gate, the report says so', async () => {
    const { listener, handle, sink, errors, events } = await fakeListener();
    handle.gateError = systemError('EPERM', 1, 'setsockopt');
    listener.pause();
    queue(handle, 2);
    const closing = listener.close();
    expect([handle.gated, handle.listening, handle.resetQueued]).toEqual([false, false, 0]);
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(['EPERM']);
    expect(sink.delivered.size).toBe(2);
    for (const connection of [...sink.open]) connection.destroy();
    const report = await closing;
    expect(report).toMatchObject({ gated: false, queuedAtClose: 2, accepted: 2, served: 2 });
    expect(events).toEqual(['draining', 'close']);
  });

  test('a long queue is swept in one step (nothing reset, new clients refused at once) but wrapped 128 at a time', async () => {
    // Real immediates: one loop iteration apart.
    vi.useRealTimers();
    const sink = new FakeSink();
    const { listener, handle } = await fakeListener(sink);
    listener.pause();
    queue(handle, 300);
    const closing = listener.close();
    expect(handle.listening).toBe(false);
    expect(handle.resetQueued).toBe(0);
    expect(handle.syn()).toBe('refused');
    // All 300 are counted at once, 128 are delivered now, the rest on later iterations.
    expect(listener.count).toBe(301);
    const sizes = [sink.delivered.size];
    for (let i = 0; i < 5 && sink.delivered.size < 300; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      sizes.push(sink.delivered.size);
    }
    expect(sizes).toEqual([128, 256, 300]);
    expect([...sink.delivered.values()].every((draining) => draining)).toBe(true);
    for (const connection of [...sink.open]) connection.destroy();
    const report = await closing;
    expect(report).toMatchObject({ queuedAtClose: 300, accepted: 300, served: 300 });
    expect(sink.violations).toEqual([]);
  });

  test("a throwing 'error' listener in an accept batch strands nothing: the rest is delivered, the error rethrown on its own tick", async () => {
    const sink = new FakeSink();
    const { listener, handle, errors } = await fakeListener(sink);
    listener.on('error', () => {
      throw new Error("the 'error' listener threw");
    });
    queue(handle, 4);
    sink.failWrap.add(handle.queue[1]!);
    const ticks: (() => void)[] = [];
    const spy = vi.spyOn(process, 'nextTick').mockImplementation(((callback: () => void) => {
      ticks.push(callback);
    }) as typeof process.nextTick);
    try {
      handle.poll();
    } finally {
      spy.mockRestore();
    }
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(['EMFILE']);
    expect(ticks).toHaveLength(1);
    expect(() => ticks[0]!()).toThrow("the 'error' listener threw");
    expect(sink.delivered.size).toBe(3);
    expect(listener.count).toBe(4);
    expect(sink.violations).toEqual([]);
  });
});

describe('destroy()', () => {
  test('destroys every connection now, closes the fd once they are gone, and returns the same promise as close()', async () => {
    const { listener, handle, sink, events } = await fakeListener();
    queue(handle, 2);
    handle.poll();
    const destroyed = listener.destroy();
    expect(listener.destroy()).toBe(destroyed);
    expect(listener.close()).toBe(destroyed);
    expect([...sink.delivered.keys()].every((connection) => connection.destroyed)).toBe(true);
    const report = await destroyed;
    expect(report).toMatchObject({ openAtClose: 2, destroyed: 2, ended: 0, served: 0 });
    expect(handle.closed).toBe(true);
    expect(events).toEqual(['draining', 'close']);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('cuts a close under way short: its deadlines no longer matter', async () => {
    const { listener, handle, sink } = await fakeListener();
    queue(handle, 1);
    handle.poll();
    const closing = listener.close({ timeout: 600_000 });
    expect(listener.destroy()).toBe(closing);
    expect([...sink.delivered.keys()][0]!.destroyed).toBe(true);
    expect(await closing).toMatchObject({ openAtClose: 1, destroyed: 1 });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('ListenSocket.open without IPv6', () => {
  test('no host: falls back to IPv4 as Node does; family: 6 does not', async () => {
    const binding = new FakeBinding();
    binding.openErrors.set(6, systemError('EAFNOSUPPORT', 97, 'socket'));
    const socket = await ListenSocket.open({}, binding);
    expect(binding.handles).toHaveLength(1);
    socket.close();
    await expect(ListenSocket.open({ family: 6 }, binding)).rejects.toMatchObject({ code: 'EAFNOSUPPORT' });
    expect(binding.handles).toHaveLength(1);
  });
});
