// What a node:net socket has really not handed to the kernel yet, for --max-output.
//
// socket.writableLength counts a write request in flight until all of it is written: a writev
// of 16 MiB of which the kernel took 12 still counts 16 (#9 item 4: readers whose whole backlog
// stayed at 80-97% of the limit were cut). libuv knows what is left of the request in flight
// (uv_stream_t.write_queue_size, the handle's writeQueueSize, updated as the kernel takes
// bytes); the stream knows the request's size (writelen, while writing). Neither is public
// API, so without them this falls back to writableLength, which only ever counts more.
import type { Socket } from 'node:net';

interface StreamInternals {
  _writableState?: { writing?: boolean; writelen?: number };
  _handle?: { writeQueueSize?: number } | null;
}

/** Bytes written to `socket` that the kernel has not taken: buffered in the stream, plus what
 *  is left of the request in flight. */
export function unsentBytes(socket: Socket): number {
  const buffered = socket.writableLength;
  const internals = socket as unknown as StreamInternals;
  const state = internals._writableState;
  if (state === undefined || state.writing !== true) return buffered;
  const inFlight = state.writelen;
  const left = internals._handle?.writeQueueSize;
  if (typeof inFlight !== 'number' || typeof left !== 'number' || left > inFlight) return buffered;
  return buffered - inFlight + left;
}
