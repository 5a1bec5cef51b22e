// A plain reading of the wire format, for property tests to hold the real parsers against.
import { HEADER_BYTES } from '../src/protocol/frame.ts';

/** What a byte string means, by the plainest possible reading of the protocol. */
export function referenceParse(bytes: Uint8Array, maxFrame: number): { frames: Buffer[]; oversized: boolean; rest: number } {
  const frames: Buffer[] = [];
  let at = 0;
  while (bytes.length - at >= HEADER_BYTES) {
    let length = 0n;
    for (let i = 0; i < HEADER_BYTES; i++) length = (length << 8n) | BigInt(bytes[at + i]!);
    if (length > BigInt(maxFrame)) return { frames, oversized: true, rest: bytes.length - at };
    if (BigInt(bytes.length - at - HEADER_BYTES) < length) break;
    frames.push(Buffer.from(bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + Number(length))));
    at += HEADER_BYTES + Number(length);
  }
  return { frames, oversized: false, rest: bytes.length - at };
}

/** Cuts `bytes` at the given points (any integers; folded into range, duplicates allowed). */
export function cut(bytes: Uint8Array, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...at, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(from, p)));
    from = p;
  }
  return chunks;
}
