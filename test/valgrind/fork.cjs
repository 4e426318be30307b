// Preloaded (NODE_OPTIONS=--require) into vitest by run.sh: vitest's main
// process stays a plain node, and only the fork that runs the test files
// starts under valgrind, which follows it into the node children the tests
// spawn. Every other fork is left alone.
'use strict';
const childProcess = require('node:child_process');

const valgrind = process.env.GL_VALGRIND_ARGS;
if (valgrind !== undefined) {
  const fork = childProcess.fork;
  childProcess.fork = function forkUnderValgrind(modulePath, args, options) {
    if (!Array.isArray(args)) {
      options = args;
      args = [];
    }
    if (!String(modulePath).endsWith('/workers/forks.js')) return fork.call(this, modulePath, args, options);
    const env = { ...(options?.env ?? process.env) };
    if (process.env.GL_VALGRIND_NODE_OPTIONS) env.NODE_OPTIONS = process.env.GL_VALGRIND_NODE_OPTIONS;
    return fork.call(this, modulePath, args, {
      ...options,
      env,
      execPath: 'valgrind',
      execArgv: [...JSON.parse(valgrind), process.execPath, ...(options?.execArgv ?? process.execArgv)],
    });
  };
}
