// Which binary did the loader map? The suite runs once against the source
// build and once with PREBUILDS_ONLY=1 (after `npm run prebuildify`); this test
// proves the second run really exercised prebuilds/, not build/Release.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import { loadBinding } from '../../src/core/native.js';

const packageRoot = path.resolve(__dirname, '..', '..');

function mappedAddons(): string[] {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const files = new Set<string>();
  for (const line of maps.split('\n')) {
    const file = line.slice(line.indexOf('/'));
    if (line.includes('/') && file.endsWith('.node')) files.add(file);
  }
  return [...files];
}

describe('addon loader', () => {
  it('maps exactly one graceful-listener binary, from the expected place', async () => {
    const listener = await ListenSocket.open({ host: '127.0.0.1' }, loadBinding());
    listener.close();
    const ours = mappedAddons().filter((file) => file.startsWith(packageRoot + path.sep));
    expect(ours).toHaveLength(1);
    const relative = path.relative(packageRoot, ours[0]!);
    if (process.env.PREBUILDS_ONLY) {
      expect(relative).toMatch(new RegExp(`^prebuilds/${process.platform}-${process.arch}/[^/]+\\.node$`));
    } else {
      expect(relative).toMatch(/^(build\/Release\/|prebuilds\/)/);
    }
  });
});
