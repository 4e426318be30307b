// `graceful-listener/testing` as a consumer loads it: the package's exports
// map, CommonJS and ESM, one module instance. Needs dist/ (npm test builds it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

describe('the graceful-listener/testing export', () => {
  it('resolves for require and import to the same functions', () => {
    for (const file of ['dist/testing/index.js', 'dist/testing/index.mjs', 'dist/testing/index.d.ts', 'dist/testing/index.d.mts']) {
      expect(fs.existsSync(path.join(root, file)), `${file} (run npx tsc -p tsconfig.json)`).toBe(true);
    }
    const script = `
      const cjs = require('graceful-listener/testing');
      import('graceful-listener/testing').then((esm) => {
        process.stdout.write(JSON.stringify({
          same: esm.runUnderLoad === cjs.runUnderLoad && esm.LoadError === cjs.LoadError,
          names: Object.keys(esm).sort(),
          resolved: require.resolve('graceful-listener/testing'),
        }));
      });`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 })) as {
      same: boolean;
      names: string[];
      resolved: string;
    };
    expect(out.same).toBe(true);
    expect(out.resolved).toBe(path.join(root, 'dist', 'testing', 'index.js'));
    expect(out.names).toEqual(expect.arrayContaining(['runUnderLoad', 'selfSignedCertificate', 'classifyError', 'LoadError']));
  });

  it('declares the command in bin', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      bin?: Record<string, string>;
    };
    expect(manifest.bin?.['graceful-listener']).toBe('./dist/cli/main.js');
    expect(fs.readFileSync(path.join(root, 'dist', 'cli', 'main.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
