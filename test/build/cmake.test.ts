// The cmake-js build (native/CMakeLists.txt) must produce a working addon
// from the same sources as binding.gyp. Builds into a temp dir, loads the
// result directly (not through node-gyp-build) and drives a real listener.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, test } from 'vitest';
import { ListenSocket } from '../../src/index.js';
import type { NativeBinding } from '../../src/core/native.js';

const run = promisify(execFile);
const packageRoot = path.resolve(__dirname, '..', '..');
const outDir = mkdtempSync(path.join(os.tmpdir(), 'graceful-listener-cmake-'));

// cmake-js would download Node's headers unless npm's nodedir points at
// installed ones; use the headers shipped beside the running node.
function nodeDir(): string {
  const besideNode = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(besideNode, 'include', 'node', 'node_api.h')) ? besideNode : '/usr';
}

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

/** The sources and defines each build file names, as sorted lists. */
function buildInputs(): {
  gyp: { sources: string[]; defines: string[] };
  cmake: { sources: string[]; defines: string[] };
} {
  const gyp = JSON.parse(readFileSync(path.join(packageRoot, 'binding.gyp'), 'utf8')) as {
    targets: { sources: string[]; defines: string[] }[];
  };
  const target = gyp.targets[0]!;
  const cmake = readFileSync(path.join(packageRoot, 'native', 'CMakeLists.txt'), 'utf8');
  const block = (command: string): string[] => {
    const match = new RegExp(`${command}\\(\\$\\{PROJECT_NAME\\}([^)]*)\\)`).exec(cmake);
    if (match === null) throw new Error(`no ${command}(\${PROJECT_NAME} …) in CMakeLists.txt`);
    return match[1]!.split(/\s+/).filter((word) => word !== '');
  };
  return {
    gyp: { sources: [...target.sources].sort(), defines: [...target.defines].sort() },
    cmake: {
      sources: block('add_library')
        .filter((word) => word.endsWith('.cc'))
        .map((file) => `native/${file}`)
        .sort(),
      defines: block('target_compile_definitions')
        .filter((word) => word !== 'PRIVATE')
        .sort(),
    },
  };
}

describe('binding.gyp and native/CMakeLists.txt', () => {
  test('name the same sources, every .cc file in native/, and the same defines', () => {
    const { gyp, cmake } = buildInputs();
    const onDisk = readdirSync(path.join(packageRoot, 'native'))
      .filter((file) => file.endsWith('.cc'))
      .map((file) => `native/${file}`)
      .sort();
    expect(gyp.sources).toEqual(onDisk);
    expect(cmake.sources).toEqual(onDisk);
    expect(cmake.defines).toEqual(gyp.defines);
    expect(gyp.defines).toContain('NAPI_DISABLE_CPP_EXCEPTIONS');
  });
});

describe('cmake-js build', () => {
  it('builds native/ and the result opens, accepts and closes a listener', { timeout: 240_000 }, async () => {
    const cmakeJs = path.join(packageRoot, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
    await run(process.execPath, [cmakeJs, 'compile', '-d', 'native', '-O', outDir, '-l', 'warn'], {
      cwd: packageRoot,
      env: { ...process.env, npm_config_nodedir: nodeDir() },
      timeout: 230_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const file = path.join(outDir, 'Release', 'graceful_listener.node');
    expect(existsSync(file)).toBe(true);

    const module = { exports: {} as NativeBinding };
    process.dlopen(module, file);
    const binding = module.exports;
    expect(typeof binding.open).toBe('function');
    expect(typeof binding.adopt).toBe('function');
    expect(binding.acceptBatch).toBeGreaterThan(0);

    const listener = await ListenSocket.open({ host: '127.0.0.1', port: 0 }, binding);
    try {
      const { port, address } = listener.address();
      expect(address).toBe('127.0.0.1');
      expect(port).toBeGreaterThan(0);
      const accepted = new Promise<number[]>((resolve) => listener.arm(resolve));
      const client = net.connect(port, '127.0.0.1');
      const closed = new Promise((resolve) => client.on('close', resolve));
      client.on('error', () => {});
      const fds = await accepted;
      expect(fds).toHaveLength(1);
      new net.Socket({ fd: fds[0] }).end();
      await closed;
    } finally {
      listener.close();
    }
    expect(listener.closed).toBe(true);
  });
});
