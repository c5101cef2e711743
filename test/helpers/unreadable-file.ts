/**
 * A state file that is there but that nobody can read, root included: what root's 0600 file (a
 * CLI run with sudo) is to the daemon's user, in a test that CI runs as root, where file modes
 * do not stop a read. It is a Unix socket with no listener: stat sees it (a stamp, as a file),
 * open fails (ENXIO), and a rename over it succeeds, as over a file in a folder one owns.
 */
import { linkSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

/** Puts such a socket at `file` (in place of whatever was there: a new inode, as another process's write). */
export async function makeUnreadable(file: string): Promise<void> {
  const listening = `${file}.listening`;
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(listening, resolve));
  rmSync(file, { force: true });
  // a second name for the socket: closing the server removes the first one only
  linkSync(listening, file);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(listening, { force: true });
}
