import { performance } from 'node:perf_hooks';
import { countOf, type Experiment } from '../harness.js';

const SERVER = 1;

export const dupFd: Experiment = {
  name: 'dup-fd',
  summary: 'fd versus file description: dup a registered socket, close the original without deregistering, and events keep coming (Linux)',
  async run(lab) {
    const { client, server, poll } = await lab.watchedServer();
    const copy = lab.dup(server);
    lab.note(`fd ${server} and fd ${copy} now name one open file description (one socket)`);
    lab.note(`close fd ${server} without deregistering it`);
    lab.close(server);

    lab.write(client, -1, 10);
    let events = lab.wait(poll, 300);
    // epoll registers the (fd, description) pair and drops it only when the description
    // dies. libkqueue keeps the fd in its own epoll set, so it inherits that. A BSD kernel
    // removes every knote of an fd on close(2) — not measured here.
    const keepsComing = lab.backend === 'epoll' || lab.libkqueue;
    lab.expect(countOf(events, SERVER) === (keepsComing ? 1 : 0),
      keepsComing ? 'events for the closed fd keep coming: the registration belongs to the description, which fd ' + copy + ' keeps alive'
        : 'closing the fd removed its registration (kqueue ties knotes to the fd number)',
      keepsComing ? '1 event' : '0 events', `${countOf(events, SERVER)} event(s)`);
    if (lab.libkqueue) {
      const data = events.find((event) => event.token === SERVER)?.data ?? -1;
      lab.note(`libkqueue's data=${data}: it asks FIONREAD of fd ${server}, a number that is closed now`);
    }
    lab.drain(copy, SERVER);

    lab.note(`try to deregister fd ${server}: that number is closed`);
    let error = 'ok';
    try {
      lab.deregister(poll, server);
    } catch (e) {
      error = (e as NodeJS.ErrnoException).code ?? String(e);
      lab.note(`deregister fd ${server} threw ${error}`);
    }
    lab.note(`try to deregister fd ${copy}: it was never registered under that number`);
    lab.deregister(poll, copy);
    lab.write(client, -1, 10);
    const before = performance.now();
    events = lab.wait(poll, 300);
    const waited = performance.now() - before;
    if (lab.backend === 'epoll') {
      lab.expect(error === 'EBADF', 'the closed fd cannot be deregistered', 'EBADF', error);
      lab.expect(countOf(events, SERVER) === 1, 'nor through the dup (ENOENT, which the addon treats as done): events still come',
        '1 event', `${countOf(events, SERVER)} event(s)`);
    } else {
      lab.expect(countOf(events, SERVER) === 0, 'kqueue forgets the registration once EV_DELETE names the closed fd', '0 events',
        `${countOf(events, SERVER)} event(s) (EV_DELETE said ${error})`);
      if (lab.libkqueue && waited < 250) {
        lab.note(`yet the wait returned after ${waited.toFixed(2)} ms instead of 300: libkqueue's own epoll set still holds the socket, woke up, and found no knote to report`);
      }
    }
    lab.drain(copy, SERVER);

    lab.note(`close fd ${copy}, the last fd of the description: the socket is gone and so is the registration`);
    lab.close(copy);
    lab.write(client, -1, 10);
    events = lab.wait(poll, 100);
    lab.expect(events.length === 0, 'no more events once the description is closed', '0 events', `${events.length}`);
  },
};
