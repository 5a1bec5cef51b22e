// A plain reading of the wire format, for property tests to hold the real parsers against.
import fc from 'fast-check';
import { encodeFrame, HEADER_BYTES } from '../src/protocol/frame.ts';

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

/** An 8-byte length prefix of any 64-bit value. */
export function lengthPrefix(length: bigint): Uint8Array {
  const bytes = Buffer.alloc(HEADER_BYTES);
  bytes.writeBigUInt64BE(length);
  return bytes;
}

/**
 * Streams that are mostly well formed, with junk and hostile prefixes mixed in: random bytes
 * alone almost always start with an enormous length and test nothing else. Some streams relay
 * everything, some break a limit mid-way, some end in an incomplete frame.
 */
export function hostileStream(options: { maxPayload: number; maxPlausibleLength: number; minParts: number; maxParts: number }): fc.Arbitrary<Uint8Array> {
  return fc
    .array(
      fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: options.maxPayload }).map((p) => new Uint8Array(encodeFrame(p))), weight: 4 },
        { arbitrary: fc.uint8Array({ maxLength: 40 }), weight: 2 },
        { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(lengthPrefix), weight: 1 },
        { arbitrary: fc.integer({ min: 0, max: options.maxPlausibleLength }).map((n) => lengthPrefix(BigInt(n))), weight: 1 },
      ),
      { minLength: options.minParts, maxLength: options.maxParts },
    )
    .map((parts) => new Uint8Array(Buffer.concat(parts)));
}
