import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const SERVER = 1;
const SECOND = 2;

export const spurious: Experiment = {
  name: 'spurious',
  summary: 'readiness is a hint: the poller re-checks it when it hands an event over, but it is a snapshot; with two pollers on a socket, one handler finds EAGAIN',
  async run(lab) {
    const { client, server, poll } = await lab.watchedServer();

    lab.note('part 1: 10 bytes arrive, the wait reports them; 10 more arrive before the loop reads');
    lab.write(client, -1, 10);
    lab.wait(poll, 1000);
    lab.write(client, -1, 10);
    await lab.sleep(5);
    lab.note('the handler reads until EAGAIN: it takes both arrivals');
    lab.drain(server, SERVER);
    const events = lab.wait(poll, 50);
    // The second arrival queued an edge; both kernels poll the socket again when they hand an
    // event over (epoll's ep_send_events, kqueue's kqueue_scan) and drop it if nothing is left.
    // That is implementation, not contract: a loop must not count on it.
    lab.expect(countOf(events, SERVER) === 0, 'the queued edge for data already drained is dropped: the poller re-checks readiness when it hands events over',
      '0 events', `${countOf(events, SERVER)}`);

    lab.note('part 2: the same socket in a second poller (a second thread\'s, say); 10 bytes arrive');
    const second = lab.newPoll();
    lab.name(SECOND, 'second');
    lab.register(second, server, SECOND, Interest.READABLE, Trigger.EDGE);
    lab.write(client, -1, 10);
    await lab.sleep(5);
    lab.note('both threads wait, and each gets its event before either reads');
    const first = lab.wait(poll, 1000);
    const other = lab.wait(second, 0);
    lab.note('the first handler reads until EAGAIN');
    lab.drain(server, SERVER);
    lab.expect(countOf(first, SERVER) === 1 && countOf(other, SECOND) === 1, 'both pollers report it: each registration has its own readiness',
      '1 event each', `${countOf(first, SERVER)} and ${countOf(other, SECOND)}`);
    const late = lab.read(server, SECOND, 65536);
    lab.expect(late === -native.errno.EAGAIN, 'the second handler\'s read finds the data gone: EAGAIN, to be taken in stride',
      'EAGAIN', late < 0 ? native.errnoName(-late) : `${late} bytes`);
    lab.note('so a loop treats every event as "try it": EAGAIN is a normal answer, never an error (select(2) BUGS says the same of select)');
  },
};
