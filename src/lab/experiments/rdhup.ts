import { native } from '../../native/binding.js';
import { Interest, Ready, Trigger, describeReady } from '../../poll/index.js';
import { describeRawEvent, kernelBit } from '../../trace/kernel.js';
import { interestBit } from '../capabilities.js';
import { flagsOf, type Experiment, type Lab } from '../harness.js';

const SERVER = 1;
const QUIET = 2;

export const rdhup: Experiment = {
  name: 'rdhup',
  summary: 'half-close: the peer\'s shutdown(SHUT_WR) is READ_CLOSED with EPOLLRDHUP, or only read() == 0 without it; this side can still write; EPOLLHUP needs both directions shut',
  async run(lab) {
    const poll = lab.newPoll();
    lab.name(SERVER, 'server');
    lab.note('part 1: registered READABLE (the addon adds EPOLLRDHUP); the peer sends 100 bytes and half-closes: shutdown(SHUT_WR), a FIN');
    const a = await lab.pair();
    lab.register(poll, a.server, SERVER, Interest.READABLE, Trigger.EDGE);
    lab.write(a.client, -1, 100);
    lab.shutdown(a.client, 1);
    await lab.sleep(10);
    let events = lab.wait(poll, 1000);
    let flags = flagsOf(events, SERVER);
    lab.expect((flags & Ready.READABLE) !== 0 && (flags & Ready.READ_CLOSED) !== 0,
      lab.backend === 'epoll' ? 'the FIN is on the event: READABLE|READ_CLOSED (EPOLLIN|EPOLLRDHUP), before any read returns 0'
        : 'the FIN is on the event: EV_EOF on the read filter (kqueue always reports it; there is no switch)',
      'READABLE|READ_CLOSED', describeReady(flags));
    const drained = lab.drain(a.server, SERVER);
    lab.expect(drained.bytes === 100 && drained.last === 0, 'the data comes first, then read() == 0', '100 bytes then 0',
      `${drained.bytes} bytes then ${drained.last < 0 ? native.errnoName(-drained.last) : drained.last}`);

    lab.note('half-closed is not closed: this side writes 20 bytes to the peer, who still reads');
    lab.write(a.server, SERVER, 20);
    await lab.sleep(5);
    const back = lab.read(a.client, -1, 65536);
    lab.expect(back === 20, 'a FIN ends one direction only: the peer reads what this side sends after it', '20 bytes',
      back < 0 ? native.errnoName(-back) : `${back} bytes`);

    lab.note('now this side shuts its own direction too');
    lab.shutdown(a.server, 1, SERVER);
    await lab.sleep(10);
    events = lab.wait(poll, 200);
    flags = flagsOf(events, SERVER);
    if (lab.backend === 'epoll') {
      const raw = events.find((event) => event.token === SERVER)?.raw ?? 0;
      lab.expect((raw & kernelBit('EPOLLHUP')) !== 0, 'with both directions shut the socket is hung up: EPOLLHUP, reported whatever the interest', 'EPOLLHUP',
        events.length === 0 ? 'no event' : describeRawEvent('epoll', raw, 0));
    } else {
      lab.note(`kqueue: ${events.length === 0 ? 'no event' : describeReady(flags)}; EV_EOF is per filter, and the read filter had already said it`);
    }
    lab.deregister(poll, a.server);

    const noRdhup = interestBit('NO_RDHUP');
    if (lab.backend !== 'epoll') return lab.skip('kqueue reports EV_EOF on the read filter always; there is nothing to switch off');
    if ('missing' in noRdhup) return lab.skip(`${noRdhup.missing}: EPOLLRDHUP is always set`);
    await withoutRdhup(lab, noRdhup.bit);
  },
};

/** The same half-close with EPOLLRDHUP left out: only read() == 0 tells. */
async function withoutRdhup(lab: Lab, noRdhup: number): Promise<void> {
  const poll = lab.newPoll();
  lab.name(QUIET, 'no-rdhup');
  lab.note('part 2: registered with EPOLLIN alone (RDHUP off); the same 100 bytes and half-close');
  const b = await lab.pair();
  lab.register(poll, b.server, QUIET, Interest.READABLE | noRdhup, Trigger.EDGE);
  lab.write(b.client, -1, 100);
  lab.shutdown(b.client, 1);
  await lab.sleep(10);
  const events = lab.wait(poll, 1000);
  const flags = flagsOf(events, QUIET);
  lab.expect((flags & Ready.READABLE) !== 0 && (flags & Ready.READ_CLOSED) === 0,
    'without EPOLLRDHUP the event is plain READABLE: nothing says the peer is done', 'READABLE', describeReady(flags));
  const drained = lab.drain(b.server, QUIET);
  lab.expect(drained.last === 0, 'only read() == 0 tells, after the data', '0', String(drained.last));
}
