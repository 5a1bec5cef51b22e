import { readFileSync } from 'node:fs';
import { loadBinding } from '../native/binding.js';
import { parseCommand, usageLine, type Command } from './args.js';

export const INFO: Command = {
  name: 'info',
  summary: 'Print, as JSON, the version, the poller backend, the Node-API version and where the addon was loaded from.',
  flags: {},
};

export const INFO_USAGE = usageLine(INFO);

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function info(argv: string[]): void {
  parseCommand(INFO, argv);
  const { binding, loadedFrom, path } = loadBinding();
  const result = {
    version: packageVersion(),
    backend: binding.backend,
    napiVersion: binding.napiVersion,
    runtimeNapiVersion: Number(process.versions.napi),
    addon: { loadedFrom, path },
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
