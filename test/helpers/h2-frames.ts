// A frame-level HTTP/2 client (RFC 9113) for test/drain: just enough to open
// GET streams and see every frame the server sends, so GOAWAY frames are
// counted on the wire (Node's client stops reading once its session is done)
// and a stream opened after a GOAWAY can be checked for being processed.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { HOST, certificate, nextEvent, when } from './kit.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export interface Goaway {
  lastStreamId: number;
  code: number;
}

export interface StreamState {
  /** A HEADERS frame came back for it. */
  answered: boolean;
  body: string;
  /** END_STREAM received. */
  complete: boolean;
  /** RST_STREAM error code, if reset. */
  reset?: number;
}

function encodeFrame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

// HPACK (RFC 7541, appendix A static table): :method GET (2), :scheme http
// (6) or https (7), then :path and :authority as literals without indexing
// with an indexed name (:path 4, :authority 1); strings without Huffman.
function requestBlock(path: string, secure: boolean): Buffer {
  const literal = (nameIndex: number, value: string): Buffer =>
    Buffer.concat([Buffer.from([nameIndex, value.length]), Buffer.from(value, 'latin1')]);
  return Buffer.concat([Buffer.from([0x82, secure ? 0x87 : 0x86]), literal(0x04, path), literal(0x01, 'localhost')]);
}

/**
 * Events: 'frame' (each frame received, after it was recorded), 'goaway'.
 * SETTINGS are acknowledged, and PINGs unless `acknowledgePings` is false.
 */
export class H2FrameClient extends EventEmitter {
  readonly socket: net.Socket;
  readonly #secure: boolean;
  /** The type of every frame received, in order. */
  readonly received: number[] = [];
  readonly goaways: Goaway[] = [];
  readonly streams = new Map<number, StreamState>();
  readonly errors: Error[] = [];
  ended = false;
  closed = false;
  /** Whether PINGs are acknowledged (a peer that never answers them: false). */
  acknowledgePings = true;
  #nextStreamId = 1;
  #buffer = Buffer.alloc(0);
  readonly #onFrame: ((frame: Frame, client: H2FrameClient) => void) | undefined;

  constructor(socket: net.Socket, secure: boolean, onFrame?: (frame: Frame, client: H2FrameClient) => void) {
    super();
    this.socket = socket;
    this.#secure = secure;
    this.#onFrame = onFrame;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', (error) => this.errors.push(error));
    // The client closes its side once the server has: a clean close both ways.
    socket.on('end', () => {
      this.ended = true;
      this.emit('frame');
      socket.end();
    });
    socket.on('close', () => {
      this.closed = true;
      this.emit('frame');
    });
  }

  /** Connects (h2c, or TLS with ALPN h2) and sends the preface. */
  static connect(
    port: number,
    options: { secure?: boolean; onFrame?: (frame: Frame, client: H2FrameClient) => void } = {},
  ): Promise<H2FrameClient> {
    const secure = options.secure ?? false;
    const socket = secure
      ? tls.connect({ host: HOST, port, ALPNProtocols: ['h2'], ca: certificate().cert, servername: 'localhost' })
      : net.connect({ host: HOST, port });
    return H2FrameClient.over(socket, secure, options.onFrame);
  }

  /** Speaks HTTP/2 over `socket` (a TLS socket must negotiate h2) once it is connected. */
  static async over(
    socket: net.Socket,
    secure: boolean,
    onFrame?: (frame: Frame, client: H2FrameClient) => void,
  ): Promise<H2FrameClient> {
    const client = new H2FrameClient(socket, secure, onFrame);
    if (secure || socket.connecting) await nextEvent(socket, secure ? 'secureConnect' : 'connect');
    client.start();
    return client;
  }

  start(): void {
    this.socket.write(Buffer.concat([PREFACE, encodeFrame(FRAME.SETTINGS, 0, 0)]));
  }

  /** Opens a GET stream (HEADERS with END_STREAM) and returns its id. */
  request(path = '/'): number {
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    this.streams.set(id, { answered: false, body: '', complete: false });
    this.socket.write(encodeFrame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, requestBlock(path, this.#secure)));
    return id;
  }

  /** Acknowledges `ping` (with `acknowledgePings` false, the test decides when). */
  acknowledgePing(ping: Frame): void {
    this.socket.write(encodeFrame(FRAME.PING, ACK, 0, ping.payload));
  }

  /** Resolves once `check` holds, tested on every frame and at end/close. */
  until(check: (client: H2FrameClient) => boolean, what: string): Promise<void> {
    return when(this, ['frame'], () => check(this), what);
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3);
      if (this.#buffer.length < 9 + length) return;
      const frame: Frame = {
        type: this.#buffer[3]!,
        flags: this.#buffer[4]!,
        streamId: this.#buffer.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.#buffer.subarray(9, 9 + length)),
      };
      this.#buffer = this.#buffer.subarray(9 + length);
      this.#handle(frame);
    }
  }

  #handle(frame: Frame): void {
    const stream = this.streams.get(frame.streamId);
    this.received.push(frame.type);
    switch (frame.type) {
      case FRAME.SETTINGS:
        if ((frame.flags & ACK) === 0) this.socket.write(encodeFrame(FRAME.SETTINGS, ACK, 0));
        break;
      case FRAME.HEADERS:
        if (stream !== undefined) {
          stream.answered = true;
          if (frame.flags & END_STREAM) stream.complete = true;
        }
        break;
      case FRAME.DATA:
        if (stream !== undefined) {
          stream.body += frame.payload.toString('latin1');
          if (frame.flags & END_STREAM) stream.complete = true;
        }
        break;
      case FRAME.RST_STREAM:
        if (stream !== undefined) stream.reset = frame.payload.readUInt32BE(0);
        break;
      case FRAME.GOAWAY:
        this.goaways.push({ lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff, code: frame.payload.readUInt32BE(4) });
        break;
    }
    // The hook sees the frame before the PING is acknowledged, so it can send
    // something that the acknowledgement follows on the wire.
    this.#onFrame?.(frame, this);
    if (frame.type === FRAME.PING && (frame.flags & ACK) === 0 && this.acknowledgePings && !this.socket.writableEnded) {
      this.socket.write(encodeFrame(FRAME.PING, ACK, 0, frame.payload));
    }
    if (frame.type === FRAME.GOAWAY) this.emit('goaway', this.goaways.at(-1));
    this.emit('frame', frame);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
