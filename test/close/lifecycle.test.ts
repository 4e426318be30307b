// Issue 4, tests 4 and 5: what a close leaves behind (a refused port, no fd),
// and the state machine's edges as seen through the listener's events.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { listen, type Listener } from '../../src/index.js';
import { Opened, anyFdPointsTo, fdTarget, nextEvent } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** One HTTP/1.1 request on a raw socket: the response head, once the body has arrived. */
function request(socket: net.Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text);
      if (end >= 0 && length !== null && text.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData);
        resolve(text.slice(0, end));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

function recordStates(listener: Listener<net.Socket>): { states: string[]; closeEvents: () => number } {
  const states: string[] = [listener.state];
  let closeEvents = 0;
  listener.on('draining', () => states.push(listener.state));
  listener.on('accepting', () => states.push(listener.state));
  listener.on('close', () => {
    closeEvents++;
    states.push(listener.state);
  });
  return { states, closeEvents: () => closeEvents };
}

async function httpListener() {
  const server = http.createServer((_request, response) => response.end('ok\n'));
  const listener = opened.listener(await listen(server, { host: '127.0.0.1' }));
  return { server, listener, port: listener.address().port };
}

/** A raw client the listener has accepted: it holds the drain open until it ends. */
async function heldClient(listener: Listener<net.Socket>, port: number): Promise<net.Socket> {
  const accepted = nextEvent(listener, 'connection');
  const client = opened.track(net.connect({ port, host: '127.0.0.1' }));
  client.on('error', () => {});
  await nextEvent(client, 'connect');
  await accepted;
  return client;
}

describe('after the close', () => {
  test("the port refuses connections and the listening fd is gone; during the drain it already refuses, fd still open", async () => {
    const { server, listener, port } = await httpListener();
    const fd = listener.fd;
    const target = fdTarget(fd);
    expect(target).toMatch(/^socket:\[\d+\]$/);
    const held = await heldClient(listener, port);

    const closing = listener.close();
    expect(listener.state).toBe('draining');
    // Shut down with its queue empty: a new client is refused at once, while
    // the fd stays open until the held connection is released.
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
    expect(fdTarget(fd)).toBe(target);
    expect(listener.state).toBe('draining');

    held.end();
    await closing;
    await opened.closed(listener);
    expect(listener.fd).toBe(-1);
    expect(anyFdPointsTo(target!)).toBe(false);
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
    expect(server.listening).toBe(false);
  });
});

describe('the state machine', () => {
  test("close() twice returns the same promise; 'close' once; accepting -> draining -> closed", async () => {
    const { listener, port } = await httpListener();
    const { states, closeEvents } = recordStates(listener);
    const held = await heldClient(listener, port);

    const first = listener.close();
    const second = listener.close({ timeout: 5 });
    expect(second).toBe(first);
    expect(listener.count).toBe(2);

    held.end();
    const report = await first;
    await opened.closed(listener);
    expect(listener.close()).toBe(first);
    await new Promise((resolve) => setImmediate(resolve));
    expect(closeEvents()).toBe(1);
    expect(states).toEqual(['accepting', 'draining', 'closed']);
    expect(listener.count).toBe(0);
    expect(report).toMatchObject({ openAtClose: 1, served: 1, ended: 0, destroyed: 0 });
  });

  test('resume() while draining: accepting -> draining -> accepting, close() rejects with ERR_CLOSE_ABORTED, a new client is served normally', async () => {
    const { listener, port } = await httpListener();
    const { states, closeEvents } = recordStates(listener);
    const held = await heldClient(listener, port);

    const aborted = listener.close();
    const outcome = aborted.then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    expect(listener.state).toBe('draining');
    expect(await opened.connectOutcome(port)).toBe('ECONNREFUSED');
    listener.resume();
    expect(await outcome).toBe('ERR_CLOSE_ABORTED');
    expect(states).toEqual(['accepting', 'draining', 'accepting']);

    // Listening again on the same fd, and out of draining mode: keep-alive.
    const fresh = await heldClient(listener, port);
    const head = await request(fresh, '/after-resume');
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).not.toMatch(/\r\nconnection: close/i);
    expect(listener.count).toBe(3);

    const final = listener.close();
    expect(final).not.toBe(aborted);
    held.end();
    fresh.end();
    await final;
    await opened.closed(listener);
    expect(closeEvents()).toBe(1);
    expect(states).toEqual(['accepting', 'draining', 'accepting', 'draining', 'closed']);
  });
});
