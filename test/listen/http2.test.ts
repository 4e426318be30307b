// http2 servers fed by the listener: 'session' and 'stream' fire as after
// server.listen(), and a secure server with allowHTTP1 still answers HTTP/1.1.
import http2 from 'node:http2';
import { afterEach, describe, expect, test } from 'vitest';
import { listen } from '../../src/index.js';
import { HOST, Opened, certificate, connections, nextEvent, request, waitFor } from '../helpers/kit.js';

const opened = new Opened();
afterEach(() => opened.dispose());

/** `requests` requests on one session; resolves with each ':status body'. */
async function onOneSession(authority: string, requests: number): Promise<string[]> {
  const session = opened.track(http2.connect(authority, { rejectUnauthorized: false }));
  const replies: string[] = [];
  for (let i = 0; i < requests; i++) {
    const stream = session.request({ ':path': `/${i}` });
    const [headers] = await nextEvent<[http2.IncomingHttpHeaders]>(stream, 'response');
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    await nextEvent(stream, 'end');
    replies.push(`${headers[':status']} ${body}`);
  }
  const closed = nextEvent(session, 'close');
  session.close();
  await closed;
  return replies;
}

describe.each([
  { name: 'http2.createServer', secure: false },
  { name: 'http2.createSecureServer', secure: true },
])('$name fed by listen()', ({ secure }) => {
  test("'session' once per connection, 'stream' once per request", async () => {
    const sessions: http2.ServerHttp2Session[] = [];
    const streams: string[] = [];
    const make = secure ? () => http2.createSecureServer(certificate()) : () => http2.createServer();
    const server = make();
    server.on('session', (session: http2.ServerHttp2Session) => sessions.push(session));
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      streams.push(String(headers[':path']));
      stream.respond({ ':status': 200 });
      stream.end(`stream ${headers[':path']}`);
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const authority = `${secure ? 'https' : 'http'}://${HOST}:${listener.address().port}`;

    expect(await onOneSession(authority, 3)).toEqual(['200 stream /0', '200 stream /1', '200 stream /2']);
    expect(await onOneSession(authority, 1)).toEqual(['200 stream /0']);
    expect(sessions).toHaveLength(2);
    expect(streams).toEqual(['/0', '/1', '/2', '/0']);

    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    expect(await connections(server)).toBe(0);
    await listener.close();
    expect(listener.state).toBe('closed');
  });
});

describe('http2.createSecureServer({ allowHTTP1: true }) fed by listen()', () => {
  test('an HTTP/1.1 client (https.get) is answered through the compat request handler', async () => {
    const versions: string[] = [];
    const server = http2.createSecureServer({ ...certificate(), allowHTTP1: true }, (req, res) => {
      versions.push(req.httpVersion);
      res.end(`hello ${req.httpVersion}`);
    });
    const listener = opened.listener(await listen(server, { host: HOST, port: 0 }));
    const { port } = listener.address();

    const reply = await request(port, { secure: true });
    expect(reply.status).toBe(200);
    expect(reply.httpVersion).toBe('1.1');
    expect(reply.body).toBe('hello 1.1');

    expect(await onOneSession(`https://${HOST}:${port}`, 1)).toEqual(['200 hello 2.0']);
    expect(versions).toEqual(['1.1', '2.0']);

    await waitFor(() => `count 1 (is ${listener.count})`, () => listener.count === 1);
    await listener.close();
  });
});
