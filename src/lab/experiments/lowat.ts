import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const WRITER = 1;
/** <netinet/tcp.h>: TCP_NOTSENT_LOWAT is 25 on Linux, 0x201 on macOS. FreeBSD has none; its
 *  kqueue takes a low-water mark per filter (NOTE_LOWAT), which the addon does not pass. */
const TCP_NOTSENT_LOWAT: Partial<Record<NodeJS.Platform, number>> = { linux: 25, darwin: 0x201 };
const LOWAT = 16 * 1024;
const BIG_BUFFER = 1024 * 1024;
const PEER_BUFFER = 64 * 1024;
const BIG_WRITE = 256 * 1024;

export const lowat: Experiment = {
  name: 'lowat',
  summary: 'TCP_NOTSENT_LOWAT bounds what the kernel holds unsent: a write stops short at the mark where a plain socket fills its send buffer (NOTE_LOWAT is kqueue\'s per-filter form)',
  async run(lab) {
    const option = TCP_NOTSENT_LOWAT[process.platform];
    if (option === undefined) return lab.skip(`${process.platform} has no TCP_NOTSENT_LOWAT, and NOTE_LOWAT needs a kevent field the addon does not pass`);
    const { SOL_SOCKET, SO_SNDBUF, SO_RCVBUF, IPPROTO_TCP } = native.sockopt;
    const plain = await lab.pair();
    const capped = await lab.pair();
    const poll = lab.newPoll();
    for (const pair of [plain, capped]) {
      native.setsockopt(pair.client, SOL_SOCKET, SO_SNDBUF, BIG_BUFFER);
      native.setsockopt(pair.server, SOL_SOCKET, SO_RCVBUF, PEER_BUFFER);
    }
    const set = native.setsockopt(capped.client, IPPROTO_TCP, option, LOWAT);
    lab.note(`two writers with a ${BIG_BUFFER}-byte send buffer; peers that do not read (${PEER_BUFFER}-byte receive buffers); TCP_NOTSENT_LOWAT ${LOWAT} on the second: ${set < 0 ? native.errnoName(-set) : 'ok'}`);
    if (set < 0) return lab.skip(`setsockopt(TCP_NOTSENT_LOWAT) failed: ${native.errnoName(-set)}`);
    lab.name(WRITER, 'plain');
    lab.name(WRITER + 1, 'lowat');
    lab.note('level-triggered WRITABLE, so each wait says how things stand now');
    lab.register(poll, plain.client, WRITER, Interest.WRITABLE, Trigger.LEVEL);
    lab.register(poll, capped.client, WRITER + 1, Interest.WRITABLE, Trigger.LEVEL);
    let events = lab.wait(poll, 0);
    lab.expect(countOf(events, WRITER) === 1 && countOf(events, WRITER + 1) === 1, 'with nothing written both are writable', '1 event each',
      `plain ${countOf(events, WRITER)}, lowat ${countOf(events, WRITER + 1)}`);

    lab.note('each writes 256 KiB: more than the peer\'s window takes, far less than the send buffer holds');
    const took = lab.write(plain.client, WRITER, BIG_WRITE);
    const tookCapped = lab.write(capped.client, WRITER + 1, BIG_WRITE);
    lab.expect(took === BIG_WRITE && tookCapped > 0 && tookCapped < BIG_WRITE,
      'plain takes it all into the send buffer; lowat stops short: it holds no more than the mark unsent beyond what the window lets out',
      `plain ${BIG_WRITE}, lowat short`, `plain ${took}, lowat ${tookCapped}`);
    await lab.sleep(20);
    lab.note(`unsent bytes (SIOCOUTQ: in flight, plus not yet sent): plain ${native.bytesUnsent(plain.client)}, lowat ${native.bytesUnsent(capped.client)}`);
    events = lab.wait(poll, 0);
    lab.expect(countOf(events, WRITER) === 1, 'plain stays writable with a quarter megabyte queued: free space is all that counts without the mark',
      '1 event', `${countOf(events, WRITER)}`);
    lab.deregister(poll, plain.client);

    lab.note('the peer of lowat reads everything there is, as it arrives (untraced)');
    const sink = Buffer.allocUnsafe(65536);
    let read = 0;
    const deadline = Date.now() + 3000;
    while (read < tookCapped && Date.now() < deadline) {
      for (let n = native.read(capped.server, sink, 0, sink.length); n > 0; n = native.read(capped.server, sink, 0, sink.length)) read += n;
      await lab.sleep(5);
    }
    lab.note(`the peer read ${read} bytes`);
    const more = lab.write(capped.client, WRITER + 1, BIG_WRITE);
    lab.expect(read >= tookCapped && more > 0, 'once the peer has taken it, lowat accepts the next slice: the application keeps the rest in its own hands, where it can still be reordered or dropped',
      'more bytes accepted', more < 0 ? native.errnoName(-more) : `${more} bytes`);
  },
};
