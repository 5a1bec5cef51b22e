import { native } from '../../native/binding.js';
import { Interest, Ready, Trigger, describeReady, type Poll } from '../../poll/index.js';
import { countOf, flagsOf, type Experiment, type Lab } from '../harness.js';

const CLIENT = 1;
const SERVER = 2;
const SMALL_BUFFER = 64 * 1024;
const BIG_WRITE = 4 * 1024 * 1024;

export const writeReady: Experiment = {
  name: 'write-ready',
  summary: 'write readiness: an event on registration; after a small write none on Linux (every ACK on FreeBSD); a short write is the end of the space; incoming data re-reports WRITABLE on epoll',
  async run(lab) {
    const { client, server } = await lab.pair();
    // Small buffers keep "the end of the space" to a few hundred KiB instead of megabytes.
    const { SOL_SOCKET, SO_SNDBUF, SO_RCVBUF } = native.sockopt;
    native.setsockopt(client, SOL_SOCKET, SO_SNDBUF, SMALL_BUFFER);
    native.setsockopt(server, SOL_SOCKET, SO_RCVBUF, SMALL_BUFFER);
    const poll = lab.newPoll();
    lab.name(CLIENT, 'client');
    lab.name(SERVER, 'server');
    lab.register(poll, client, CLIENT, Interest.WRITABLE, Trigger.EDGE);

    let events = lab.wait(poll, 1000);
    lab.expect(countOf(events, CLIENT) === 1 && (flagsOf(events, CLIENT) & Ready.WRITABLE) !== 0,
      'registering an empty send buffer raises one WRITABLE event at once', '1 WRITABLE event', `${events.length} event(s)`);
    events = lab.wait(poll, 50);
    lab.expect(events.length === 0, 'and no more while nothing changes', '0 events', `${events.length}`);

    lab.note('part 1: a small write, as mob makes: 64 bytes; the peer receives and acknowledges them');
    lab.write(client, CLIENT, 64);
    events = lab.wait(poll, 100);
    const unsent = native.bytesUnsent(client);
    lab.note(`unsent bytes in the send buffer now: ${unsent}`);
    if (process.platform === 'linux') {
      // Linux wakes a writer (sk_write_space) only for a socket marked SOCK_NOSPACE, which a write
      // sets when it runs out of room; an ACK for a small write wakes nobody. libkqueue sits on
      // the same kernel.
      lab.expect(countOf(events, CLIENT) === 0, 'Linux: a small write raises no new WRITABLE event, not even once the buffer is empty again',
        '0 events', `${countOf(events, CLIENT)} event(s), ${unsent} bytes unsent`);
    } else {
      // FreeBSD calls sowwakeup after every ACK that frees send space (tcp_input: sbcut, then
      // sowwakeup), which fires an EV_CLEAR write filter again: an event may come. Not measured here.
      lab.expect(countOf(events, CLIENT) <= 1 && (countOf(events, CLIENT) === 0 || (flagsOf(events, CLIENT) & Ready.WRITABLE) !== 0),
        'BSD: the ACK of a small write may wake the write filter again (sowwakeup); if it does, it says WRITABLE',
        'at most one WRITABLE event', describeReady(flagsOf(events, CLIENT)));
    }

    lab.note(`part 2: one write of ${BIG_WRITE} bytes; the peer does not read`);
    let accepted = lab.write(client, CLIENT, BIG_WRITE);
    lab.expect(accepted > 0 && accepted < BIG_WRITE, 'the write is short: it took what fitted, and said so without EAGAIN',
      'a short write', accepted < 0 ? native.errnoName(-accepted) : `${accepted} of ${BIG_WRITE} bytes`);
    lab.note('a short write is the end of the space (epoll(7), Q9): wait for WRITABLE now, as mob does, without writing until EAGAIN');
    events = lab.wait(poll, 1000);
    const unsentNow = native.bytesUnsent(client);
    lab.expect(countOf(events, CLIENT) === 1, 'the short write armed WRITABLE: it fired as soon as ACKs freed room (loopback moved bytes into the peer\'s receive buffer)',
      '1 WRITABLE event', `${countOf(events, CLIENT)} event(s), ${unsentNow} bytes unsent`);
    lab.expect(unsentNow > 0, 'it fires when there is room, not when the send buffer is empty', 'bytes still unsent', `${unsentNow} bytes unsent`);
    lab.note('write again: the peer\'s receive buffer is full now, so what fits stays in the send buffer');
    accepted = lab.write(client, CLIENT, BIG_WRITE);
    events = lab.wait(poll, 100);
    lab.expect(accepted < BIG_WRITE && events.length === 0, 'with the peer\'s window closed nothing frees room: no event', '0 events',
      `${events.length} (the write took ${accepted < 0 ? native.errnoName(-accepted) : `${accepted} bytes`})`);
    lab.note('the peer reads 16 KiB per round, the writer waits 20 ms after each');
    const { rounds, unsentAtEvent } = await readUntilWritable(lab, poll, server, client);
    lab.expect(unsentAtEvent >= 0, 'once the peer reads and room opens, WRITABLE fires again',
      'a WRITABLE event', unsentAtEvent >= 0 ? `after ${rounds} read(s) by the peer, ${unsentAtEvent} bytes unsent` : 'none within 3 s');
    lab.drain(server, -1, 65536, true);

    lab.note('part 3: a socket registered READABLE|WRITABLE, as a loop that never drops write interest has it');
    const other = await lab.pair();
    lab.register(poll, other.server, SERVER, Interest.BOTH, Trigger.EDGE);
    lab.wait(poll, 1000);
    lab.note('the peer sends 10 bytes; this side has written nothing');
    lab.write(other.client, -1, 10);
    events = lab.wait(poll, 1000);
    const flags = flagsOf(events, SERVER);
    if (lab.backend === 'epoll' || lab.libkqueue) {
      // ep_poll_callback re-reads the whole poll mask on any wake-up of the socket, EPOLLOUT
      // included; libkqueue registers both filters in one epoll entry and inherits that.
      lab.expect((flags & Ready.READABLE) !== 0 && (flags & Ready.WRITABLE) !== 0,
        'incoming data re-reports WRITABLE with READABLE, though no write ever hit EAGAIN: WRITABLE is a level, seen at each edge',
        'READABLE and WRITABLE', describeReady(flags));
    } else {
      lab.expect((flags & Ready.READABLE) !== 0 && (flags & Ready.WRITABLE) === 0,
        'kqueue: incoming data fires the read filter only; the write filter has its own knote', 'READABLE only', describeReady(flags));
    }
    lab.drain(other.server, SERVER);
  },
};

/** The peer reads a round at a time until the writer hears WRITABLE: the rounds are one note,
 *  so the timeline does not depend on how many it took. */
async function readUntilWritable(lab: Lab, poll: Poll, peer: number, writer: number): Promise<{ rounds: number; unsentAtEvent: number }> {
  const chunk = Buffer.allocUnsafe(16 * 1024);
  const deadline = Date.now() + 3000;
  let rounds = 0;
  let bytes = 0;
  while (Date.now() < deadline) {
    const n = native.read(peer, chunk, 0, chunk.length);
    if (n > 0) {
      rounds++;
      bytes += n;
    } else {
      await lab.sleep(5);
    }
    const unsent = native.bytesUnsent(writer);
    const events = lab.waitQuietly(poll, 20);
    if (countOf(events, CLIENT) > 0) {
      lab.note(`the peer read ${bytes} bytes in ${rounds} reads before that event; the waits in between returned nothing`);
      return { rounds, unsentAtEvent: unsent };
    }
  }
  return { rounds, unsentAtEvent: -1 };
}
