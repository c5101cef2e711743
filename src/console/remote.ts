/** A client's address and port as logs name it: `[v6]:port` or `v4:port`. */
export function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  const address = socket.remoteAddress ?? 'unknown';
  return `${address.includes(':') ? `[${address}]` : address}:${socket.remotePort ?? 0}`;
}
