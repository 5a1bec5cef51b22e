// mob's wire format (hjr3/mob): an 8-byte big-endian unsigned length, then that many bytes.
// Shared by both engines and the client, so all three agree on what a frame is.
import { TWO_POW_32 } from '../native/constants.js';

export const HEADER_BYTES = 8;

/**
 * The length prefix at buf[offset..offset+8). Exact up to 2**53; a larger prefix comes back
 * as an inexact but still larger-than-any-limit number, which is all a limit check needs.
 * Messages that quote a length use exactLength.
 */
export function readLength(buf: Uint8Array, offset: number): number {
  const high = ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
  const low = ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>> 0;
  return high * TWO_POW_32 + low;
}

/** The length prefix at buf[offset..offset+8), exact to 2**64-1: for error reports only (a
 *  BigInt per call), so 2**53+1 is not reported as 9007199254740992 (#9). */
function exactLength(buf: Uint8Array, offset: number): bigint {
  return new DataView(buf.buffer, buf.byteOffset + offset, HEADER_BYTES).getBigUint64(0, false);
}

/** Where the frame starting at `at` ends (its header must be there). */
export function nextFrame(buf: Uint8Array, at: number): number {
  return at + HEADER_BYTES + readLength(buf, at);
}

export function writeLength(buf: Uint8Array, offset: number, length: number): void {
  const high = Math.floor(length / TWO_POW_32);
  const low = length >>> 0;
  buf[offset] = high >>> 24;
  buf[offset + 1] = (high >>> 16) & 0xff;
  buf[offset + 2] = (high >>> 8) & 0xff;
  buf[offset + 3] = high & 0xff;
  buf[offset + 4] = low >>> 24;
  buf[offset + 5] = (low >>> 16) & 0xff;
  buf[offset + 6] = (low >>> 8) & 0xff;
  buf[offset + 7] = low & 0xff;
}

/** One frame, header and body in one buffer (so it leaves in one write). */
export function encodeFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  writeLength(frame, 0, payload.length);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

/** What scanFrames found; reused by the caller, so scanning allocates nothing. */
export class FrameScan {
  /** Offset just past the last complete frame (== start when none). */
  end = 0;
  /** Complete frames in [start, end). */
  frames = 0;
  /** Total size (header + body) of the incomplete frame at `end`, or -1 if its header is incomplete. */
  pendingTotal = -1;
  /** Length prefix that broke the limit, or -1. When set, `end` stops before that frame. */
  oversized = -1;
  /** The same prefix, exact (read as a BigInt only then), for the error report; 0n otherwise. */
  oversizedLength = 0n;
}

/**
 * Walks complete frames in buf[start, limit). Never throws: a length over maxFrame is
 * reported in scan.oversized and the walk stops in front of it.
 */
export function scanFrames(buf: Uint8Array, start: number, limit: number, maxFrame: number, scan: FrameScan): FrameScan {
  let at = start;
  let frames = 0;
  scan.pendingTotal = -1;
  scan.oversized = -1;
  while (limit - at >= HEADER_BYTES) {
    const length = readLength(buf, at);
    if (length > maxFrame) {
      scan.oversized = length;
      scan.oversizedLength = exactLength(buf, at);
      break;
    }
    const total = HEADER_BYTES + length;
    if (limit - at < total) {
      scan.pendingTotal = total;
      break;
    }
    at += total;
    frames++;
  }
  scan.end = at;
  scan.frames = frames;
  return scan;
}

export class FrameTooLargeError extends Error {
  readonly code = 'MOB_FRAME_TOO_LARGE';
  /** `length` is exact, up to 2**64-1. */
  constructor(readonly length: bigint, readonly maxFrame: number) {
    super(`frame length ${length} exceeds the limit of ${maxFrame} bytes`);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Joins a byte stream that arrives in arbitrary chunks into runs of complete frames, keeping
 * only the incomplete tail between chunks. The chunks of an incomplete frame are joined once,
 * when `needed` bytes are in: a 16 MiB frame arriving in 64 KiB reads is copied once, not 256
 * times.
 */
export class FrameAssembler {
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private needed = 0;

  /** `scan` may be shared by assemblers that are never used at the same time. */
  constructor(
    private readonly maxFrame = Number.MAX_SAFE_INTEGER,
    readonly scan = new FrameScan(),
  ) {}

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.partsBytes;
  }

  /**
   * The complete frames now available, as one region (empty if none). Afterwards `scan.frames`
   * counts them, and `scan.oversized` is a length prefix over the limit (-1 if none): the
   * stream is unusable past that point, and nothing after it is kept.
   *
   * The region's buffer holds little besides the region: receivers' queues keep views of it, so
   * the bytes of a partial frame in the same buffer would be held once there and once more when
   * that frame is joined (#9 item 5: the uv engine held twice --max-output).
   */
  push(chunk: Buffer): Buffer {
    const scan = this.scan;
    if (this.parts.length === 0) {
      scanFrames(chunk, 0, chunk.length, this.maxFrame, scan);
      this.keepTail(chunk, scan.end);
      if (scan.end === chunk.length) return chunk;
      const region = chunk.subarray(0, scan.end);
      // More than a quarter of partial frame behind the region: the receivers get a copy instead.
      return chunk.length - scan.end > scan.end / 4 && scan.end > 0 ? Buffer.concat([region], scan.end) : region;
    }
    this.parts.push(chunk);
    this.partsBytes += chunk.length;
    scan.frames = 0;
    scan.oversized = -1;
    if (this.partsBytes < this.needed) return EMPTY;
    let total = this.needed;
    if (total === HEADER_BYTES) {
      // Only the header was missing: its length now says how much the frame needs.
      const header = Buffer.concat(this.parts, HEADER_BYTES);
      const length = readLength(header, 0);
      if (length > this.maxFrame) {
        scan.oversized = length;
        scan.oversizedLength = exactLength(header, 0);
        this.reset();
        return EMPTY;
      }
      total = HEADER_BYTES + length;
      this.needed = total;
      if (this.partsBytes < total) return EMPTY;
    }
    // The pending frame ends in this chunk: join it and the whole frames after it, nothing more.
    const frameEnd = chunk.length - (this.partsBytes - total);
    scanFrames(chunk, frameEnd, chunk.length, this.maxFrame, scan);
    const joined = Buffer.concat(this.parts, total + (scan.end - frameEnd));
    this.reset();
    scan.frames++;
    this.keepTail(chunk, scan.end);
    return joined;
  }

  /** Keeps chunk[end..] (a partial frame) for the next push, unless the stream broke there. */
  private keepTail(chunk: Buffer, end: number): void {
    const scan = this.scan;
    if (scan.oversized >= 0 || end === chunk.length) return;
    this.parts.push(end === 0 ? chunk : chunk.subarray(end));
    this.partsBytes = chunk.length - end;
    this.needed = scan.pendingTotal > 0 ? scan.pendingTotal : HEADER_BYTES;
  }

  /** Drops the incomplete frame, if any. */
  reset(): void {
    this.parts = [];
    this.partsBytes = 0;
  }
}

/**
 * Incremental decoder for a byte stream that arrives in arbitrary chunks (the client, tests):
 * calls onFrame with each body as a view (valid only during the call).
 */
export class FrameDecoder {
  private readonly assembler: FrameAssembler;

  constructor(
    private readonly onFrame: (body: Buffer) => void,
    private readonly maxFrame = Number.MAX_SAFE_INTEGER,
  ) {
    this.assembler = new FrameAssembler(maxFrame);
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.assembler.buffered;
  }

  /** Throws FrameTooLargeError (after delivering the frames before it). */
  push(chunk: Buffer): void {
    const region = this.assembler.push(chunk);
    for (let at = 0; at < region.length; ) {
      const end = nextFrame(region, at);
      this.onFrame(region.subarray(at + HEADER_BYTES, end));
      at = end;
    }
    const scan = this.assembler.scan;
    if (scan.oversized >= 0) throw new FrameTooLargeError(scan.oversizedLength, this.maxFrame);
  }
}
