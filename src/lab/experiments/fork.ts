import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { native } from '../../native/binding.js';
import { countOf, type Experiment } from '../harness.js';

const SERVER = 1;

export const fork: Experiment = {
  name: 'fork',
  summary: 'a registered socket across fork: a child that holds a copy keeps the registration alive after the parent closes its fd; the poller itself is close-on-exec',
  async run(lab) {
    const { client, server, poll } = await lab.watchedServer();

    lab.note(`fork + exec a child (sleep 10) that holds a copy of fd ${server} (as its fd 3), as a prefork server hands a connection to a worker`);
    // sleep(1), not node: a child that made an epoll of its own would muddle the check below.
    const child = spawn('sleep', ['10'], { stdio: ['ignore', 'ignore', 'ignore', server] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    lab.onCleanup(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    if (process.platform === 'linux') {
      const inherited = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
        } catch {
          return 'gone'; // closed between the listing and the look
        }
      });
      const pollers = inherited.filter((target) => target.includes('eventpoll') || target.includes('kqueue'));
      lab.expect(pollers.length === 0, 'the child did not inherit the poller: it is close-on-exec (EPOLL_CLOEXEC), else the child\'s waits could take the parent\'s events',
        'no eventpoll descriptor in the child', `${inherited.length} descriptors, ${pollers.length} poller(s)`);
    }

    const elsewhere = lab.listen();
    lab.note(`the parent closes fd ${server} without deregistering: the child's copy keeps the socket, and its open file description, alive`);
    lab.close(server);
    lab.write(client, -1, 10);
    let events = lab.wait(poll, 300);
    // epoll registers (fd, description) and drops the registration only when the description
    // dies; libkqueue keeps the fd in an epoll set and inherits that. A BSD kernel removes an
    // fd's knotes on close(2) — not measured here.
    const keepsComing = lab.backend === 'epoll' || lab.libkqueue;
    lab.expect(countOf(events, SERVER) === (keepsComing ? 1 : 0),
      keepsComing ? 'events for the closed fd keep coming to the parent: the child keeps the registration alive' : 'close(2) removed the knote: no events',
      keepsComing ? '1 event' : '0 events', `${countOf(events, SERVER)} event(s)`);

    const reused = lab.track(native.connect('127.0.0.1', elsewhere.port));
    lab.note(`the parent opens a new socket: fd ${reused}${reused === server ? ', the same number' : ''}`);
    if (lab.backend === 'epoll') {
      const result = lab.attempt(() => lab.deregister(poll, server));
      lab.note(`deregister fd ${server}: ${result} — but that names ${reused === server ? 'the new socket, which is not registered (ENOENT, which the addon treats as done)' : 'a closed number'}`);
      lab.write(client, -1, 10);
      events = lab.wait(poll, 300);
      lab.expect(countOf(events, SERVER) === 1, 'the old registration cannot be reached through the number any more: events still come',
        '1 event', `${countOf(events, SERVER)} event(s)`);
    }

    lab.note('the child exits: the last copy closes, and with the description the registration goes');
    child.kill('SIGKILL');
    await exited;
    lab.write(client, -1, 10);
    events = lab.wait(poll, 100);
    lab.expect(countOf(events, SERVER) === 0, 'no more events once the child\'s copy is gone', '0 events', `${countOf(events, SERVER)}`);
  },
};
