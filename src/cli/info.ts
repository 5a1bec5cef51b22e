import { readFileSync } from 'node:fs';
import { loadBinding } from '../native/binding.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function info(): void {
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
