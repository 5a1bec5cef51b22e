// A lab experiment of your own, on the same harness as `mob lab`: real loopback sockets, a
// poller driven by hand, a timeline of every call and event, and checks that fail the run
// when the kernel does something else. This one asks: does a level-triggered registration
// keep reporting data that nobody reads? Run it: `npx tsx examples/lab-experiment.ts`.
import { pathToFileURL } from 'node:url';
import { Trigger } from 'mob-echo';
import { runExperiment, type Experiment } from 'mob-echo/lab';

const SERVER = 1; // the token watchedServer() registers the accepted side under

export const levelRepeats: Experiment = {
  name: 'level-repeats',
  summary: 'level-triggered: unread data is reported by every wait, not just the first',
  async run(lab) {
    // A loopback pair; its accepted side registered READABLE, level-triggered, as token 1.
    const { client, server, poll } = await lab.watchedServer(Trigger.LEVEL);
    lab.write(client, -1, 100);
    for (const attempt of [1, 2, 3]) {
      const events = lab.wait(poll, 1000).filter((event) => event.token === SERVER);
      lab.expect(events.length === 1, `wait ${attempt} reports the unread bytes again`, '1 event', `${events.length}`);
    }
    lab.drain(server, SERVER);
    const after = lab.wait(poll, 50);
    lab.expect(after.length === 0, 'once drained, the next wait is silent', '0 events', `${after.length}`);
  },
};

export default levelRepeats;

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const result = await runExperiment(levelRepeats, (line) => console.log(line));
  console.log(`${result.ok ? 'PASS' : 'FAIL'} ${result.name} (${result.backend}): ${result.checks - result.failures.length}/${result.checks} checks`);
  if (!result.ok) process.exitCode = 1;
}
