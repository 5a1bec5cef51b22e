// An experiment of your own: run it with `mob lab ./coalesce.mjs`. Everything comes in through
// `lab` (sockets, the poller, lab.Interest, lab.Trigger, lab.native), so the file needs no imports.
export default {
  name: 'coalesce',
  summary: 'three arrivals before the loop waits: how many events?',
  async run(lab) {
    const { client, server } = await lab.pair();
    const poll = lab.newPoll();
    lab.name(1, 'server');
    lab.register(poll, server, 1, lab.Interest.READABLE, lab.Trigger.EDGE);

    lab.note('the peer writes three times before the loop waits');
    for (let i = 0; i < 3; i++) lab.write(client, -1, 10);
    await lab.sleep(10);
    const events = lab.wait(poll, 1000);
    lab.expect(lab.count(events, 1) === 1, 'three arrivals before a wait make one event', '1 event', `${lab.count(events, 1)}`);
    const { bytes } = lab.drain(server, 1);
    lab.expect(bytes === 30, 'and one drain takes all three', '30 bytes', `${bytes} bytes`);
  },
};
