import { native } from '../../native/binding.js';
import { Interest, Trigger } from '../../poll/index.js';
import type { Experiment } from '../harness.js';

const LISTENERS = 4;
const CONNECTIONS = 40;

export const reuseport: Experiment = {
  name: 'reuseport',
  summary: 'SO_REUSEPORT: four listeners on one port; Linux hashes each connection to one of them, so every listener gets a share and no wake-up is shared',
  async run(lab) {
    const first = lab.track(native.listen('127.0.0.1', 0, 0, true));
    const { port } = native.localAddress(first);
    const listeners = [first];
    for (let i = 1; i < LISTENERS; i++) listeners.push(lab.track(native.listen('127.0.0.1', port, 0, true)));
    lab.note(`${LISTENERS} listeners bound to 127.0.0.1:${port} with SO_REUSEPORT: fds ${listeners.join(', ')}`);
    const poll = lab.newPoll();
    listeners.forEach((fd, i) => {
      lab.name(i + 1, `listener${i + 1}`);
      lab.register(poll, fd, i + 1, Interest.READABLE, Trigger.EDGE);
    });

    lab.note(`${CONNECTIONS} clients connect (each from its own port: the 4-tuple hash picks the listener)`);
    for (let i = 0; i < CONNECTIONS; i++) lab.track(native.connect('127.0.0.1', port));
    await lab.sleep(30);
    const events = lab.wait(poll, 1000);
    const accepted = listeners.map((fd) => {
      let count = 0;
      for (;;) {
        const conn = native.accept(fd);
        if (conn < 0) break;
        lab.track(conn);
        count++;
      }
      return count;
    });
    lab.note(`accepted until EAGAIN on each: ${accepted.map((n, i) => `listener${i + 1} ${n}`).join(', ')}`);
    const total = accepted.reduce((a, b) => a + b, 0);
    lab.expect(total === CONNECTIONS, 'every connection went to exactly one listener', `${CONNECTIONS}`, `${total}`);
    if (process.platform === 'linux') {
      // Each listener's own accept queue: one wake-up per connection, on one listener only.
      lab.expect(accepted.every((n) => n > 0) && events.length === LISTENERS,
        'Linux spreads them: every listener got some, and each was woken for its own queue only', `all ${LISTENERS} > 0`,
        `${accepted.join(' / ')} (${events.length} listener events)`);
      lab.note('the spread is a hash, not a balancer: a listener whose thread is busy still gets its share, queued behind the work (Majkowski, "Why does one NGINX worker take all the load?")');
    } else {
      // macOS and FreeBSD's SO_REUSEPORT hand every connection to one socket; FreeBSD balances
      // only with SO_REUSEPORT_LB. Not measured here.
      lab.expect(Math.max(...accepted) === CONNECTIONS, 'the BSDs and macOS: SO_REUSEPORT does not balance, one listener takes all (FreeBSD balances with SO_REUSEPORT_LB)',
        `one listener with ${CONNECTIONS}`, accepted.join(' / '));
    }
  },
};
