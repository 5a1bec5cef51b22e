import { native } from '../../native/binding.js';
import { Interest, Ready, Trigger, describeReady } from '../../poll/index.js';
import { describeRawEvent, kernelBit } from '../../trace/kernel.js';
import { flagsOf, type Experiment } from '../harness.js';

const CLOSED = 1;
const RESET = 2;

export const hangup: Experiment = {
  name: 'hangup',
  summary: 'hang-up: a peer close arrives with data still buffered (read it all first); a reset (RST) arrives as error and hang-up at once',
  async run(lab) {
    const poll = lab.newPoll();
    lab.name(CLOSED, 'closed');
    lab.name(RESET, 'reset');

    lab.note('part 1: the peer sends 100 bytes and closes (FIN)');
    const a = await lab.pair();
    lab.register(poll, a.server, CLOSED, Interest.READABLE, Trigger.EDGE);
    lab.write(a.client, -1, 100);
    lab.close(a.client);
    await lab.sleep(10);
    let events = lab.wait(poll, 1000);
    let flags = flagsOf(events, CLOSED);
    const buffered = native.bytesReadable(a.server);
    lab.expect((flags & Ready.READABLE) !== 0 && buffered === 100,
      'the hang-up is not an event of its own: it comes as a flag on READABLE, with the data still buffered',
      'READABLE and 100 bytes waiting', `${describeReady(flags)}, ${buffered} bytes waiting`);
    if (lab.backend === 'epoll') {
      lab.expect((flags & Ready.READ_CLOSED) !== 0, 'epoll says READ_CLOSED (EPOLLRDHUP) on that same event', 'READ_CLOSED', describeReady(flags));
    } else {
      lab.note(`kqueue: EVFILT_READ's data counts the bytes readable; EV_EOF ${flags & Ready.READ_CLOSED ? 'is' : 'is not'} set`);
    }
    lab.note('a reader that closed on seeing the hang-up would lose those bytes: read until 0 first');
    const drained = lab.drain(a.server, CLOSED);
    lab.expect(drained.bytes === 100 && drained.last === 0, 'all 100 bytes are read, then read returns 0 (EOF)', '100 bytes then 0',
      `${drained.bytes} bytes then ${drained.last < 0 ? native.errnoName(-drained.last) : drained.last}`);
    lab.deregister(poll, a.server);
    lab.close(a.server, CLOSED);

    lab.note('part 2: the peer sends 100 bytes and resets the connection (RST)');
    const b = await lab.pair();
    lab.register(poll, b.server, RESET, Interest.READABLE, Trigger.EDGE);
    lab.write(b.client, -1, 100);
    await lab.sleep(10);
    lab.reset(b.client);
    await lab.sleep(10);
    events = lab.wait(poll, 1000);
    flags = flagsOf(events, RESET);
    if (lab.backend === 'epoll') {
      const raw = events.find((event) => event.token === RESET)?.raw ?? 0;
      lab.expect((raw & kernelBit('EPOLLERR')) !== 0 && (raw & kernelBit('EPOLLHUP')) !== 0,
        'a reset is an error AND a hang-up of both directions: EPOLLERR|EPOLLHUP, with EPOLLIN for the bytes still buffered',
        'EPOLLERR|EPOLLHUP', `${describeRawEvent('epoll', raw, 0)} (${describeReady(flags)})`);
    } else {
      lab.expect((flags & Ready.ERROR) !== 0 && (flags & Ready.READ_CLOSED) !== 0,
        'a reset arrives as EV_EOF with the error in fflags: READ_CLOSED and ERROR', 'READ_CLOSED|ERROR', describeReady(flags));
    }
    // Not a socketError() call here: getsockopt(SO_ERROR) clears the error, and the reads
    // below would never see it. libkqueue makes exactly that call to fill in fflags.
    const first = lab.read(b.server, RESET, 65536);
    if (process.platform === 'linux') {
      lab.expect(first === 100, 'on Linux the bytes that arrived before the RST are still readable', '100 bytes',
        first < 0 ? native.errnoName(-first) : `${first} bytes`);
    } else {
      lab.expect(first === 100 || first < 0, 'the bytes that arrived before the RST are readable, or the read reports the reset', '100 bytes or an errno',
        first < 0 ? native.errnoName(-first) : `${first} bytes`);
    }
    const second = lab.read(b.server, RESET, 65536);
    const third = lab.read(b.server, RESET, 65536);
    const name = (n: number): string => (n < 0 ? native.errnoName(-n) : n === 0 ? 'EOF' : `${n} bytes`);
    if (lab.backend === 'epoll') {
      lab.expect(second === -native.errno.ECONNRESET && third === 0, 'then read fails once with ECONNRESET, and returns 0 after that',
        'ECONNRESET, then EOF', `${name(second)}, then ${name(third)}`);
    } else if (lab.libkqueue) {
      lab.expect(second === 0, 'libkqueue read SO_ERROR to build the event, so read never reports the reset: ERROR on the event was the only notice',
        'EOF', `${name(second)}, then ${name(third)}`);
    } else {
      lab.expect(second <= 0, 'then read reports the end (the BSDs: ECONNRESET or EOF)', 'ECONNRESET or EOF', name(second));
    }
    lab.deregister(poll, b.server);
    lab.close(b.server, RESET);
  },
};
