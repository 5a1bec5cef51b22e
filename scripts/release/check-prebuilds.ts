// prepublishOnly: refuses to publish a tarball that lacks a prebuild for any platform the
// README promises, or whose prebuild is for the wrong CPU, OS or libc. A missing prebuild
// would not fail an install (node-gyp-build compiles instead) but would silently demand a
// compiler from every user of that platform; the prebuild matrix in
// .github/workflows/release.yml makes them all.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Target {
  dir: string;
  file: string;
  os: 'linux' | 'darwin';
  arch: 'x64' | 'arm64';
  libc?: 'glibc' | 'musl';
}

const ADDON = 'mob-echo';

/** Every prebuild the published package must carry (prebuildify --napi --strip, plus
 *  --tag-libc on Linux). */
export const TARGETS: readonly Target[] = [
  ...(['x64', 'arm64'] as const).flatMap((arch) => (['glibc', 'musl'] as const).map((libc) => ({
    dir: `linux-${arch}`, file: `${ADDON}.${libc}.node`, os: 'linux' as const, arch, libc,
  }))),
  ...(['x64', 'arm64'] as const).map((arch) => ({ dir: `darwin-${arch}`, file: `${ADDON}.node`, os: 'darwin' as const, arch })),
];

const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;
const MACHO_CPU = { x64: 0x0100_0007, arm64: 0x0100_000c } as const;

/** What is wrong with one prebuild's bytes for its target, or null. */
export function checkBinary(target: Target, bytes: Buffer): string | null {
  if (target.os === 'linux') {
    if (bytes.length < 20 || bytes.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF file';
    const machine = bytes.readUInt16LE(18);
    if (machine !== ELF_MACHINE[target.arch]) return `ELF machine 0x${machine.toString(16)}, not ${target.arch}`;
    // The dynamic section names the C library: libc.so.6 (glibc) or libc.musl-ARCH.so.1.
    const musl = bytes.includes('libc.musl-');
    if (target.libc === 'musl' && !musl) return 'not linked against musl (no libc.musl-*)';
    if (target.libc === 'glibc' && (musl || !bytes.includes('libc.so.6'))) return 'not linked against glibc (no libc.so.6)';
    return null;
  }
  if (bytes.length < 8 || bytes.readUInt32LE(0) !== 0xfeedfacf) return 'not a 64-bit Mach-O file';
  const cpu = bytes.readUInt32LE(4);
  return cpu === MACHO_CPU[target.arch] ? null : `Mach-O CPU type 0x${cpu.toString(16)}, not ${target.arch}`;
}

/** Problems with the prebuilds among `files` (paths in the tarball, read from `root`). */
export function checkPrebuilds(root: string, files: readonly string[]): string[] {
  const shipped = new Set(files);
  const problems: string[] = [];
  for (const target of TARGETS) {
    const path = `prebuilds/${target.dir}/${target.file}`;
    const label = `${target.dir}${target.libc ? ` ${target.libc}` : ''}`;
    if (!shipped.has(path)) {
      problems.push(`missing ${path} (${label})`);
      continue;
    }
    const problem = checkBinary(target, readFileSync(join(root, path)));
    if (problem !== null) problems.push(`${path}: ${problem}`);
  }
  return problems;
}

/** The files `npm pack` would put in the tarball. */
export function packedFiles(root: string): string[] {
  const run = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`npm pack --dry-run failed: ${run.stderr}`);
  const [pack] = JSON.parse(run.stdout) as [{ files: { path: string }[] }];
  return pack.files.map((file) => file.path);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? process.cwd();
  const problems = checkPrebuilds(root, packedFiles(root));
  if (problems.length > 0) {
    process.stderr.write(`refusing to publish: the tarball's prebuilds are incomplete\n${problems.map((p) => `  ${p}\n`).join('')}` +
      'the release workflow (.github/workflows/release.yml) downloads every platform\'s prebuilds/ before publishing\n');
    process.exit(1);
  }
  process.stdout.write(`prebuilds ok: ${TARGETS.map((t) => `${t.dir}${t.libc ? `-${t.libc}` : ''}`).join(', ')}\n`);
}
