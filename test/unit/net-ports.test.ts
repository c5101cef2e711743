/** Free loopback ports (src/net/ports.ts): drawn below the kernel's ephemeral range, and bindable. */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freeTcpPort, freeUdpPort, PROBED_PORTS } from '../../src/net/ports.js';

describe('free ports', () => {
  it('are drawn below the ephemeral range that outgoing connections take their local ports from, and can be bound', async () => {
    for (const draw of [freeTcpPort, freeUdpPort]) {
      const port = await draw();
      expect(port).toBeGreaterThanOrEqual(PROBED_PORTS.first);
      expect(port).toBeLessThanOrEqual(PROBED_PORTS.last);
    }
    const port = await freeTcpPort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
