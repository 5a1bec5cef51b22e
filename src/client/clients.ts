// `mob client`: the original's mob-client, bounded and checking. N clients send M frames each;
// every client must receive every frame of every client, in order per sender, unaltered.
// Built on node:net on purpose: the server is checked by an independent stack.
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameDecoder } from '../protocol/frame.js';
import { percentile } from '../util/percentile.js';
import { checkPayload, fillPayload, PAYLOAD_HEADER } from './payload.js';

export interface ClientOptions {
  host: string;
  port: number;
  clients: number;
  messages: number;
  /** Payload bytes per frame (at least 8: sender and sequence). */
  size: number;
  /** Own frames in flight per client before it waits for their echo (1 = ping-pong). */
  window: number;
  timeoutMs: number;
}

export interface ClientReport {
  clients: number;
  messagesPerClient: number;
  size: number;
  sent: number;
  expected: number;
  received: number;
  outOfOrder: number;
  corrupt: number;
  errors: string[];
  /** The error code (ECONNREFUSED...) of the first client that could not connect, if any. */
  connectFailure: string | null;
  elapsedMs: number;
  framesPerSecond: number;
  rttMs: { p50: number; p99: number; max: number };
  ok: boolean;
}

/** A hello frame's sequence number: clients start only once each has seen its own hello back,
 *  i.e. once the server has accepted everyone and no frame can miss a client. */
const HELLO = 0xffff_ffff;

class Client {
  readonly socket: Socket;
  joined = false;
  connected = false;
  sent = 0;
  echoed = 0;
  received = 0;
  readonly nextFrom: Uint32Array;
  readonly sentAt: Float64Array;
  readonly rtt: Float64Array;

  constructor(readonly id: number, private readonly run: Run) {
    const { options } = run;
    this.nextFrom = new Uint32Array(options.clients);
    this.sentAt = new Float64Array(options.messages);
    this.rtt = new Float64Array(options.messages);
    this.socket = connect({ host: options.host, port: options.port, noDelay: true });
    this.socket.once('connect', () => (this.connected = true));
    const decoder = new FrameDecoder((body) => this.onFrame(body));
    this.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    this.socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!this.connected) run.connectFailure ??= error.code ?? error.message;
      run.fail(`client ${id}: ${error.message}`);
    });
    this.socket.on('close', () => {
      if (!run.finished) run.fail(`client ${id}: connection closed by the server`);
    });
  }

  sendHello(): void {
    const hello = Buffer.alloc(PAYLOAD_HEADER);
    fillPayload(hello, this.id, HELLO);
    this.socket.write(encodeFrame(hello));
  }

  pump(): void {
    const { messages, window, size } = this.run.options;
    while (this.sent < messages && this.sent - this.echoed < window) {
      const payload = Buffer.allocUnsafe(size);
      fillPayload(payload, this.id, this.sent);
      this.sentAt[this.sent] = performance.now();
      this.socket.write(encodeFrame(payload));
      this.sent++;
    }
  }

  private onFrame(body: Buffer): void {
    const run = this.run;
    if (body.length < PAYLOAD_HEADER) return run.fail(`client ${this.id}: a frame of ${body.length} bytes is too short`);
    const sender = body.readUInt32BE(0);
    const sequence = body.readUInt32BE(4);
    if (sequence === HELLO) {
      if (sender === this.id && !this.joined) {
        this.joined = true;
        run.joined();
      }
      return;
    }
    if (sender >= this.nextFrom.length) return run.fail(`client ${this.id}: frame from unknown sender ${sender}`);
    if (!checkPayload(body)) run.corrupt++;
    if (sequence !== this.nextFrom[sender]) run.outOfOrder++;
    this.nextFrom[sender] = sequence + 1;
    this.received++;
    run.received++;
    if (sender === this.id) {
      this.rtt[this.echoed++] = performance.now() - this.sentAt[sequence]!;
      this.pump();
    }
    if (run.received === run.expected) run.finish();
  }
}

class Run {
  readonly clients: Client[] = [];
  readonly expected: number;
  received = 0;
  outOfOrder = 0;
  corrupt = 0;
  finished = false;
  readonly errors: string[] = [];
  connectFailure: string | null = null;
  private joinedCount = 0;
  private started = 0;
  private readonly done: Promise<void>;
  private resolve!: () => void;

  constructor(readonly options: ClientOptions) {
    this.expected = options.clients * options.clients * options.messages;
    this.done = new Promise((resolve) => (this.resolve = resolve));
  }

  async execute(): Promise<ClientReport> {
    const { options } = this;
    const timer = setTimeout(() => this.fail(`timed out after ${options.timeoutMs} ms`), options.timeoutMs);
    const begin = performance.now();
    for (let id = 0; id < options.clients; id++) this.clients.push(new Client(id, this));
    await Promise.all(this.clients.map((c) => new Promise<void>((ok) => c.socket.once('connect', ok).once('close', ok))));
    for (const client of this.clients) client.sendHello();
    await this.done;
    clearTimeout(timer);
    const elapsedMs = performance.now() - (this.started || begin);
    for (const client of this.clients) client.socket.destroy();
    return this.report(elapsedMs);
  }

  joined(): void {
    if (++this.joinedCount < this.clients.length) return;
    this.started = performance.now();
    if (this.expected === 0) return this.finish();
    for (const client of this.clients) client.pump();
  }

  fail(message: string): void {
    if (this.finished) return;
    this.errors.push(message);
    this.finish();
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.resolve();
  }

  private report(elapsedMs: number): ClientReport {
    const rtts: number[] = [];
    let sent = 0;
    for (const client of this.clients) {
      sent += client.sent;
      for (let i = 0; i < client.echoed; i++) rtts.push(client.rtt[i]!);
    }
    const max = rtts.reduce((a, b) => Math.max(a, b), 0);
    const { options } = this;
    return {
      clients: options.clients,
      messagesPerClient: options.messages,
      size: options.size,
      sent,
      expected: this.expected,
      received: this.received,
      outOfOrder: this.outOfOrder,
      corrupt: this.corrupt,
      errors: this.errors,
      connectFailure: this.connectFailure,
      elapsedMs,
      framesPerSecond: elapsedMs > 0 ? (this.received / elapsedMs) * 1000 : 0,
      rttMs: { p50: percentile(rtts, 50), p99: percentile(rtts, 99), max },
      ok: this.errors.length === 0 && this.received === this.expected && this.outOfOrder === 0 && this.corrupt === 0,
    };
  }
}

export function runClients(options: ClientOptions): Promise<ClientReport> {
  if (options.size < PAYLOAD_HEADER) throw new RangeError(`--size must be at least ${PAYLOAD_HEADER} bytes (sender and sequence)`);
  return new Run(options).execute();
}
