// `<package>/protocol`: mob's wire format, an 8-byte big-endian length then the body
// (re-exports only).
export {
  HEADER_BYTES, encodeFrame, readLength, writeLength, FrameDecoder, FrameAssembler, FrameScan, scanFrames,
  FrameTooLargeError,
} from './frame.js';
