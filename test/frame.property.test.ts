// Property tests of the frame parser: however a stream is cut, it parses to the same frames,
// and no byte string makes it throw anything but FrameTooLargeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder, FrameScan, FrameTooLargeError, HEADER_BYTES, readLength, scanFrames } from '../src/protocol/frame.ts';
import { cut, hostileStream, referenceParse } from './reference.ts';

const payloads = fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 25 });
const cutPoints = fc.array(fc.nat(), { maxLength: 40 });

const hostile = hostileStream({ maxPayload: 300, maxPlausibleLength: 5000, minParts: 0, maxParts: 12 });

test('property: frames cut at any points and fed in any read sizes decode to the same frames', () => {
  fc.assert(
    fc.property(payloads, cutPoints, (bodies, points) => {
      const stream = Buffer.concat(bodies.map((b) => encodeFrame(b)));
      const got: Buffer[] = [];
      const decoder = new FrameDecoder((body) => got.push(Buffer.from(body)), 600);
      for (const chunk of cut(stream, points)) decoder.push(chunk);
      assert.deepEqual(got, bodies.map((b) => Buffer.from(b)));
      assert.equal(decoder.buffered, 0);
    }),
    { numRuns: 500 },
  );
});

test('property: scanFrames over a whole stream finds exactly its frames, and reports the incomplete tail', () => {
  fc.assert(
    fc.property(payloads, fc.nat(), (bodies, trim) => {
      const whole = Buffer.concat(bodies.map((b) => encodeFrame(b)));
      const stream = whole.subarray(0, whole.length - (whole.length === 0 ? 0 : trim % whole.length));
      const scan = scanFrames(stream, 0, stream.length, 600, new FrameScan());
      const expected = referenceParse(stream, 600);
      assert.equal(scan.frames, expected.frames.length);
      assert.equal(scan.end, stream.length - expected.rest);
      assert.equal(scan.oversized, -1);
      if (expected.rest >= HEADER_BYTES) assert.equal(scan.pendingTotal, HEADER_BYTES + readLength(stream, scan.end));
      else assert.equal(scan.pendingTotal, -1);
    }),
    { numRuns: 500 },
  );
});

test('property: any byte string, in any read sizes, yields the frames before a bad prefix, then FrameTooLargeError and nothing else', () => {
  fc.assert(
    fc.property(fc.oneof(hostile, fc.uint8Array({ maxLength: 200 })), cutPoints, fc.integer({ min: 0, max: 4096 }), (bytes, points, maxFrame) => {
      const expected = referenceParse(bytes, maxFrame);
      const got: Buffer[] = [];
      const decoder = new FrameDecoder((body) => got.push(Buffer.from(body)), maxFrame);
      let thrown: unknown = null;
      for (const chunk of cut(bytes, points)) {
        try {
          decoder.push(chunk);
        } catch (error) {
          thrown = error;
          break;
        }
      }
      if (thrown !== null && !(thrown instanceof FrameTooLargeError)) throw thrown;
      assert.equal(thrown !== null, expected.oversized, 'FrameTooLargeError exactly when a prefix breaks the limit');
      assert.deepEqual(got, expected.frames);
      if (!expected.oversized) assert.equal(decoder.buffered, expected.rest);
    }),
    { numRuns: 1000 },
  );
});

test('property: scanFrames never throws and never walks past a prefix over the limit', () => {
  fc.assert(
    fc.property(fc.oneof(hostile, fc.uint8Array({ maxLength: 200 })), fc.integer({ min: 0, max: 4096 }), (bytes, maxFrame) => {
      const scan = scanFrames(bytes, 0, bytes.length, maxFrame, new FrameScan());
      const expected = referenceParse(bytes, maxFrame);
      assert.equal(scan.frames, expected.frames.length);
      assert.equal(scan.oversized >= 0, expected.oversized);
      if (expected.oversized) assert.ok(scan.oversized > maxFrame);
    }),
    { numRuns: 1000 },
  );
});
