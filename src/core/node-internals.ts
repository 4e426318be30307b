// Every touch of Node's private server/socket internals lives here, each with
// the Node behaviour it mirrors, so a Node upgrade has one file to check.
import type net from 'node:net';

interface ServerWithHandle {
  _handle?: { fd?: number } | null;
}

/**
 * The fd of a listening `net.Server`: `server._handle` is the TCP wrap that
 * `server.listen()` created (lib/net.js `setupListenHandle`), and its `fd`
 * getter returns the OS socket (-1 on Windows).
 */
export function listeningFd(server: net.Server): number | undefined {
  const fd = (server as unknown as ServerWithHandle)._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
