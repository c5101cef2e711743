/**
 * Whether a process has read every datagram waiting on its UDP sockets (Linux: the socket
 * inodes behind /proc/PID/fd, their receive queues in /proc/net/udp and udp6).
 *
 * A test that ends a client right after the peer sent it something waits for this first, so
 * the client acts on what was sent, not on whichever of its inputs it happens to check first.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // the descriptor closed while we looked
    }
  }
  return inodes;
}

/** Receive-queue bytes per socket inode, from a /proc/net/udp table. */
export function receiveQueues(table: string): Map<string, number> {
  const queues = new Map<string, number>();
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 10) continue;
    const rx = cols[4]!.split(':')[1];
    if (rx !== undefined) queues.set(cols[9]!, parseInt(rx, 16));
  }
  return queues;
}

export function udpDrained(pid: number): boolean {
  const inodes = socketInodes(pid);
  if (inodes.size === 0) return false;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    for (const [inode, bytes] of receiveQueues(readFileSync(file, 'utf8'))) {
      if (inodes.has(inode) && bytes > 0) return false;
    }
  }
  return true;
}
