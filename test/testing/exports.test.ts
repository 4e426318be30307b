// `graceful-listener` and `graceful-listener/testing` as a consumer loads
// them: the package's exports map, CommonJS and ESM, one module instance,
// and exactly the public names (a missing or stray export fails).
// Needs dist/ (npm test builds it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

const MAIN_EXPORTS = [
  'EXIT_TIMED_OUT',
  'ListenSocket',
  'Listener',
  'ListenerError',
  'Readiness',
  'ServerListener',
  'adopt',
  'closeOnSignals',
  'listen',
  'sdNotify',
];
const TESTING_EXPORTS = [
  'ERROR_CODES',
  'ERROR_KINDS',
  'LoadError',
  'classifyError',
  'isLoopback',
  'runRestarts',
  'runUnderLoad',
  'selfSignedCertificate',
];

interface EntryShape {
  /** Sorted export names of require(entry). */
  cjs: string[];
  /** Sorted export names of import(entry). */
  esm: string[];
  /** Names whose ESM value is not the CJS value (two module instances). */
  different: string[];
  resolved: string;
}

/** Loads `entry` both ways in a fresh process, from the package root. */
function loadEntry(entry: string): EntryShape {
  const script = `
    const cjs = require(${JSON.stringify(entry)});
    import(${JSON.stringify(entry)}).then((esm) => {
      process.stdout.write(JSON.stringify({
        cjs: Object.keys(cjs).sort(),
        esm: Object.keys(esm).sort(),
        different: Object.keys(esm).filter((name) => esm[name] !== cjs[name]),
        resolved: require.resolve(${JSON.stringify(entry)}),
      }));
    });`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 })) as EntryShape;
}

describe('the package entries', () => {
  it('graceful-listener/testing: require and import give exactly the public names, as the same values', () => {
    for (const file of ['dist/testing/index.js', 'dist/testing/index.mjs', 'dist/testing/index.d.ts', 'dist/testing/index.d.mts']) {
      expect(fs.existsSync(path.join(root, file)), `${file} (run npx tsc -p tsconfig.json)`).toBe(true);
    }
    const shape = loadEntry('graceful-listener/testing');
    expect(shape.cjs).toEqual(TESTING_EXPORTS);
    expect(shape.esm).toEqual(TESTING_EXPORTS);
    expect(shape.different).toEqual([]);
    expect(shape.resolved).toBe(path.join(root, 'dist', 'testing', 'index.js'));
  });

  it('graceful-listener: require and import give exactly the public names, as the same values', () => {
    for (const file of ['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts']) {
      expect(fs.existsSync(path.join(root, file)), `${file} (run npx tsc -p tsconfig.json)`).toBe(true);
    }
    const shape = loadEntry('graceful-listener');
    expect(shape.cjs).toEqual(MAIN_EXPORTS);
    expect(shape.esm).toEqual(MAIN_EXPORTS);
    expect(shape.different).toEqual([]);
    expect(shape.resolved).toBe(path.join(root, 'dist', 'index.js'));
  });

  it('declares the command in bin', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      bin?: Record<string, string>;
    };
    expect(manifest.bin?.['graceful-listener']).toBe('./dist/cli/main.js');
    expect(fs.readFileSync(path.join(root, 'dist', 'cli', 'main.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
