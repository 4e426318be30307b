// The helper kit every test imports: bounded waits (wait.ts), the registry
// of what a test opened (opened.ts), loopback clients and the test
// certificate (clients.ts), fd inspection (fds.ts) and child processes
// (children.ts). Helpers for one kind of test only stay beside it: storms
// and queued clients (load.ts), python3 peers (python.ts), the HTTP/2 frame
// client (h2-frames.ts).
export { BOUND_MS, Counter, HANG_SCALE, blockUntil, nextEvent, sleep, waitFor, when, within, type What } from './wait.js';
export { Opened, protocolOf, type ProtocolReport } from './opened.js';
export {
  HOST,
  RawClient,
  certificate,
  codeOf,
  connections,
  exchange,
  nodeListen,
  rawGet,
  readEach,
  request,
  requestLoops,
  stablePort,
  type ConnectOptions,
  type Exchange,
  type RawResponse,
  type Reply,
} from './clients.js';
export {
  O_CLOEXEC,
  O_NONBLOCK,
  acceptExactly,
  anyFdPointsTo,
  fdFlags,
  fdOf,
  fdTarget,
  fdsBackTo,
  openFdTargets,
  openFds,
} from './fds.js';
export { EventChild, Lines, distEntry, repoRoot, requireDist, run, verdict, type ChildResult } from './children.js';
