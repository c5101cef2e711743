/** Firmware updates in tests: an image server, and an update through the facade as a firmware job runs it. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { connectOutband, type ConnectOptions } from '../../src/outband/connect.js';
import type { FirmwareKind, FirmwareProgress } from '../../src/outband/types.js';
import type { Fleet } from '../../src/sim/fleet.js';

export interface FirmwareOutcome {
  error?: { code?: string; message: string };
  progress: FirmwareProgress[];
}

/** updateFirmware of machine `i` from `imageUrl`; the Redfish sessions are checked closed afterwards. */
export async function updateThroughFacade(
  fleet: Fleet,
  i: number,
  kind: FirmwareKind,
  imageUrl: string,
  options: { connectTimeoutMs: number; signal?: AbortSignal; firmwareVersionWait?: ConnectOptions['firmwareVersionWait']; redfishReloginAfterRestart?: ConnectOptions['redfishReloginAfterRestart'] },
): Promise<FirmwareOutcome> {
  const m = fleet.machines[i]!;
  const bmc = await connectOutband({
    host: m.state.address,
    user: fleet.user,
    password: fleet.password,
    ipmiPort: fleet.ipmiPort,
    redfishPort: fleet.redfishPort,
    timeoutMs: options.connectTimeoutMs,
    ...(options.firmwareVersionWait ? { firmwareVersionWait: options.firmwareVersionWait } : {}),
    ...(options.redfishReloginAfterRestart ? { redfishReloginAfterRestart: options.redfishReloginAfterRestart } : {}),
  });
  const progress: FirmwareProgress[] = [];
  try {
    await bmc.updateFirmware(kind, imageUrl, { ...(options.signal ? { signal: options.signal } : {}), onProgress: (p) => progress.push(p) });
    return { progress };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { error: { code: e.code, message: e.message }, progress };
  } finally {
    await bmc.close();
    expect(fleet.redfish!.openSessions(i)).toBe(0);
  }
}

/** An HTTP server whose every path is an image of `bytes` bytes (the simulator takes an update's outcome from the image's name). */
export async function startImageServer(bytes = 65536): Promise<{ base: string; requests(): number; close(): Promise<void> }> {
  let requests = 0;
  const server = createServer((_req, res) => {
    requests += 1;
    res.writeHead(200, { 'content-length': bytes }).end(Buffer.alloc(bytes, 0x5a));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/firmware`,
    requests: () => requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
