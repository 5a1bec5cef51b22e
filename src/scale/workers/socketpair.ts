// The two ends of one peer link, made in the main thread and handed to two workers.
import { native } from '../../native/binding.js';

/** Non-blocking, close-on-exec AF_UNIX stream pair when the addon has socketpair(); before it
 *  did, a loopback TCP pair (listen on port 0, connect, accept), which works the same way. */
export function linkPair(): [number, number] {
  const withPair = native as typeof native & { socketpair?: () => [number, number] };
  if (typeof withPair.socketpair === 'function') return withPair.socketpair();
  const listener = native.listen('127.0.0.1', 0, 1, false);
  try {
    const { port } = native.localAddress(listener);
    const a = native.connect('127.0.0.1', port);
    let b = -1;
    const deadline = Date.now() + 1000;
    while (b < 0 && Date.now() < deadline) b = native.accept(listener);
    if (b < 0) {
      native.close(a);
      throw new Error(`peer link: accept failed (${native.errnoName(-b)})`);
    }
    native.setNoDelay(a, true);
    native.setNoDelay(b, true);
    return [a, b];
  } finally {
    native.close(listener);
  }
}
