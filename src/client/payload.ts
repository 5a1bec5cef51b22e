// Client frames carry who sent them and in what order, so every receiver can check that no
// frame was lost, reordered or altered: [sender u32][sequence u32][filler derived from both].

export const PAYLOAD_HEADER = 8;

export function fillPayload(payload: Buffer, sender: number, sequence: number): void {
  payload.writeUInt32BE(sender, 0);
  payload.writeUInt32BE(sequence, 4);
  let x = (sender * 2654435761 + sequence * 40503) >>> 0;
  for (let i = PAYLOAD_HEADER; i < payload.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    payload[i] = x >>> 24;
  }
}

const scratch = Buffer.alloc(64 * 1024);

/** True if `payload` is exactly what fillPayload wrote for its sender and sequence. */
export function checkPayload(payload: Buffer): boolean {
  if (payload.length < PAYLOAD_HEADER) return false;
  const expected = payload.length <= scratch.length ? scratch.subarray(0, payload.length) : Buffer.alloc(payload.length);
  fillPayload(expected, payload.readUInt32BE(0), payload.readUInt32BE(4));
  return expected.equals(payload);
}
