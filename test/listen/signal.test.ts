// options.signal: aborting closes the listener (two-phase); an aborted signal
// rejects listen() with an AbortError and leaves the server free.
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { adopt, listen } from '../../src/index.js';
import { HOST, Opened, nextEvent, nodeListen, request, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

describe('options.signal', () => {
  test("abort() closes the listener: state 'closed', 'close' once, the server's 'close' too", async () => {
    const controller = new AbortController();
    const server = net.createServer((socket) => socket.end());
    const listener = opened.listener(await listen(server, { host: HOST, port: 0, signal: controller.signal }));
    let closes = 0;
    listener.on('close', () => closes++);
    const serverClosed = nextEvent(server, 'close');

    controller.abort();
    await waitFor('the listener to close', () => listener.state === 'closed');
    await serverClosed;
    expect(closes).toBe(1);
    expect(listener.count).toBe(0);
    expect(server.listening).toBe(false);
  });

  test('abort() with a request in flight: the drain answers it, then the listener closes', async () => {
    const controller = new AbortController();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let arrived = false;
    const server = http.createServer(async (_req, res) => {
      arrived = true;
      await released;
      res.end('finished');
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0, signal: controller.signal }));
    const reply = request(listener.address().port);
    await waitFor('the request to arrive', () => arrived);

    const closed = nextEvent(listener, 'close');
    controller.abort();
    expect(listener.state).toBe('draining');
    release();
    const response = await reply;
    await closed;
    expect(response.status).toBe(200);
    expect(response.body).toBe('finished');
    expect(listener.state).toBe('closed');
  });

  test('an already-aborted signal rejects listen() with an AbortError; the server stays free', async () => {
    const server = net.createServer();
    const reason = Object.assign(new Error('stop'), { name: 'AbortError' });
    await expect(listen(server, { host: HOST, port: 0, signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    await expect(listen(server, { host: HOST, port: 0, signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(server.listening).toBe(false);

    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    expect(server.listening).toBe(true);
    await listener.close();
  });

  test('aborted while listen() is opening the socket: rejects with an AbortError, nothing left open', async () => {
    const controller = new AbortController();
    const server = net.createServer();
    let listening = 0;
    server.on('listening', () => listening++);
    const pending = listen(server, { host: HOST, port: 0, signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(listening).toBe(0);
    expect(server.listening).toBe(false);

    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    await listener.close();
  });

  test('adopt(server, { signal }): abort() closes the adopted listener', async () => {
    const controller = new AbortController();
    const server = opened.server(net.createServer((socket) => socket.end()));
    await nodeListen(server);
    const listener = opened.listener(adopt(server, { signal: controller.signal }));
    const closed = nextEvent(listener, 'close');
    controller.abort();
    await closed;
    expect(listener.state).toBe('closed');
    expect(server.listening).toBe(false);
  });

  test('adopt() with an already-aborted signal throws an AbortError and keeps Node listening', async () => {
    const server = opened.server(net.createServer((socket) => socket.end('node')));
    const port = await nodeListen(server);
    expect(() => adopt(server, { signal: AbortSignal.abort() })).toThrow(expect.objectContaining({ name: 'AbortError' }));
    expect(server.listening).toBe(true);
    const client = opened.raw(port);
    await waitFor('Node to answer', () => client.closed);
    expect(client.data).toBe('node');
  });
});
