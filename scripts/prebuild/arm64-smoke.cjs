// Run by arm64-smoke.sh inside an arm64 Node (CommonJS: Debian's arm64 node is 18, and this
// must not depend on the package's build). Prints one JSON line; exits 1 on any failure.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const [addonPath, nodeGypBuildPath] = process.argv.slice(2);
const binding = require(path.resolve(addonPath));
const listener = binding.listen('127.0.0.1', 0, 0, false);
const client = binding.connect('127.0.0.1', binding.localAddress(listener).port);
const poller = new binding.Poller();
const events = new Uint32Array(binding.EVENT_STRIDE * 4);
poller.add(listener, 42, 1);
assert.equal(poller.wait(events, 5000), 1);
assert.equal(events[0], 42);
const server = binding.accept(listener);
assert.ok(server >= 0, `accept: ${server}`);
poller.add(server, 7, 1);
const message = Buffer.from('hello from arm64');
assert.equal(binding.write(client, message, 0, message.length), message.length);
assert.equal(poller.wait(events, 5000), 1);
assert.equal(events[0], 7);
const buffer = Buffer.alloc(64);
const n = binding.read(server, buffer, 0, buffer.length);
assert.equal(buffer.subarray(0, n).toString(), message.toString());
poller.close();
for (const fd of [client, server, listener]) binding.close(fd);
// node-gyp-build, as the package's loader uses it, picks the arm64 glibc prebuild on arm64.
let picked = null;
if (nodeGypBuildPath) picked = path.relative(path.resolve(path.dirname(addonPath), '../..'), require(nodeGypBuildPath).resolve(path.resolve(path.dirname(addonPath), '../..')));
console.log(JSON.stringify({ arch: process.arch, node: process.version, backend: binding.backend, napiVersion: binding.napiVersion, echoed: n, picked }));
