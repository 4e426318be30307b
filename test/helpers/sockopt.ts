// Node has no getsockopt(): a python3 child that inherits the socket as its
// fd 3 reads the options and prints them as JSON. The child's copy of the fd
// is detached, never closed with a shutdown, so the connection is untouched.
import { spawn } from 'node:child_process';

export interface TcpOptions {
  /** TCP_NODELAY (0 or 1). */
  nodelay: number;
  /** SO_KEEPALIVE (0 or 1). */
  keepalive: number;
  /** TCP_KEEPIDLE in seconds. */
  keepidle: number;
}

const SCRIPT = `
import json, socket
s = socket.socket(fileno=3)
out = {
  'nodelay': s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
  'keepalive': s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
  'keepidle': s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
}
s.detach()
print(json.dumps(out))
`;

export function tcpOptions(fd: number): Promise<TcpOptions> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe', fd] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const bound = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', (error) => {
      clearTimeout(bound);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(bound);
      if (code !== 0) reject(new Error(`python3 getsockopt failed (${code}): ${stderr}`));
      else resolve(JSON.parse(stdout) as TcpOptions);
    });
  });
}
