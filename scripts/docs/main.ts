// npm run docs: rewrites docs/edge-triggered.md's output blocks and pictures from fresh runs on
// the backend this build uses. Run it once per backend:
//   npm run docs                                   (epoll)
//   MOB_PREBUILD=/tmp/mob-kqueue npm run docs      (libkqueue; see DEVELOPERS.md)
// Blocks of other backends are left as they are. test/docs.test.ts checks the result.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentBackend, findMarkers, regenerate, runFor } from './guide.ts';

const docs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs');
const guide = join(docs, 'edge-triggered.md');

const backend = currentBackend();
const markdown = readFileSync(guide, 'utf8');
const markers = findMarkers(markdown);
const runs = await runFor(markers, backend);
const { markdown: updated, svgs } = regenerate(markdown, backend, runs);
writeFileSync(guide, updated);
for (const [file, svg] of svgs) {
  mkdirSync(dirname(join(docs, file)), { recursive: true });
  writeFileSync(join(docs, file), svg);
}
const mine = markers.filter((marker) => marker.backend === backend);
process.stdout.write(`docs/edge-triggered.md: ${mine.length - svgs.size} block(s) and ${svgs.size} picture(s) from ${runs.size} run(s) on ${backend}; ` +
  `${markers.length - mine.length} block(s) of other backends left as they were\n`);
