import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import { countOf, type Experiment } from '../harness.js';

const LISTENER = 1;

export const edgeListener: Experiment = {
  name: 'edge-listener',
  summary: 'edge-triggered listener: one accept per event strands queued connections; accept until EAGAIN',
  async run(lab) {
    const { fd: listenFd, port } = lab.listen();
    const poll = lab.newPoll();
    lab.name(LISTENER, 'listener');
    lab.register(poll, listenFd, LISTENER, Interest.READABLE, Trigger.EDGE);

    lab.note('three clients connect before the loop gets to run');
    for (let i = 0; i < 3; i++) lab.connect(port);
    await lab.sleep(20);
    let events = lab.wait(poll, 1000);
    lab.expect(countOf(events, LISTENER) === 1, 'three queued connections, one event', '1 event', `${countOf(events, LISTENER)}`);

    lab.note('a loop that accepts once per event');
    const first = lab.accept(listenFd, LISTENER);
    events = lab.wait(poll, 100);
    lab.expect(first >= 0 && events.length === 0, 'the other two stay in the accept queue and no event comes for them',
      'an fd, then 0 events', `${first >= 0 ? `fd ${first}` : native.errnoName(-first)}, then ${events.length} event(s)`);

    lab.note('the fix: accept until EAGAIN');
    let accepted = 0;
    for (;;) {
      const fd = lab.accept(listenFd, LISTENER);
      if (fd < 0) {
        lab.expect(fd === -native.errno.EAGAIN, 'the loop ends on EAGAIN', 'EAGAIN', native.errnoName(-fd));
        break;
      }
      accepted++;
    }
    lab.expect(accepted === 2, 'the two stranded connections were there all along', '2 accepted', `${accepted}`);

    lab.note('with the queue empty, the next connection is a new edge');
    lab.connect(port);
    events = lab.wait(poll, 1000);
    lab.expect(countOf(events, LISTENER) === 1, 'a new connection raises an event again', '1 event', `${countOf(events, LISTENER)}`);
    while (lab.accept(listenFd, LISTENER) >= 0);
  },
};
