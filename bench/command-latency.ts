/**
 * Machine command latency from NATS publish to the BMC having acted (the daemon publishes the
 * result after the BMC acknowledged), p50 and p99 over N commands (default 1,000), for the
 * facade (auto: Redfish first) and for IPMI only; reference in the same run: `ipmitool chassis
 * identify` processes doing the same commands on the same BMCs. The fleet runs in a child
 * process; nats-server is Debian's, with JetStream.
 * Usage: tsx bench/command-latency.ts [N]
 */
import { connect } from '@nats-io/transport-node';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startNatsServer } from '../src/lab/nats-server.js';
import { createLogger } from '../src/log.js';
import { connectOutband, type Protocol } from '../src/outband/connect.js';
import { createOutbandPool } from '../src/outband/pool.js';
import { startCommandService } from '../src/parts/commands.js';
import { startFleetProcess, type FleetProcess } from './fleet-process.js';
import { printTable, stats } from './report.js';

const run = promisify(execFile);

/** Samples of the first command per BMC (cold: login and handshake) and of the rest (warm: pooled sessions). */
async function viaNats(fleet: FleetProcess, natsUrl: string, protocol: Protocol, n: number, machines: number): Promise<{ cold: number[]; warm: number[] }> {
  const nc = await connect({ servers: natsUrl });
  const pool = createOutbandPool({ idleMs: 20_000 });
  const subject = `bench-${protocol}-machine`;
  const service = await startCommandService({
    nc,
    subject,
    resultSubject: `${subject}-result`,
    ttlMs: 30_000,
    durableName: `bench-${protocol}`,
    // as the daemon does: connections are pooled for a few seconds after use
    connect: (ipmi, { signal }) =>
      pool.acquire(ipmi, () => connectOutband({ host: ipmi.host, ipmiPort: ipmi.port, user: fleet.user, password: fleet.password, protocol, redfishPort: fleet.redfishPort, timeoutMs: 10_000, signal })),
    concurrency: 32,
    timeoutMs: 30_000,
    logger: createLogger({ level: 'error' }),
  });
  const publisher = await connect({ servers: natsUrl });
  const results = publisher.subscribe(`${subject}-result`);
  const cold: number[] = [];
  const warm: number[] = [];
  const iterator = results[Symbol.asyncIterator]();
  for (let i = 0; i < n; i++) {
    const host = fleet.addresses[i % machines]!;
    const event = { type: 'command', cmd: { target: `m-${i % machines}`, cmd: i % (2 * machines) < machines ? 'LED-ON' : 'LED-OFF', ipmi: { address: `${host}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } };
    const t = performance.now();
    publisher.publish(subject, JSON.stringify(event));
    const msg = await iterator.next();
    (i < machines ? cold : warm).push(performance.now() - t);
    if (msg.done || !(JSON.parse(msg.value.string()) as { ok: boolean }).ok) throw new Error(`command failed: ${msg.value?.string()}`);
  }
  await service.stop(5000);
  await pool.close();
  await publisher.close();
  await nc.close();
  return { cold, warm };
}

export async function benchCommandLatency(n = 1000): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cmd-'));
  const fleet = await startFleetProcess({ count: 50 });
  const nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
  try {
    const machines = 50;
    await viaNats(fleet, nats.url, 'ipmi', 20, machines); // warm-up
    const auto = await viaNats(fleet, nats.url, 'auto', n, machines);
    const ipmi = await viaNats(fleet, nats.url, 'ipmi', n, machines);
    const refN = Math.min(n, 300);
    const reference: number[] = [];
    for (let i = 0; i < refN; i++) {
      const host = fleet.addresses[i % machines]!;
      const t = performance.now();
      await run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', host, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password, 'chassis', 'identify', i % (2 * machines) < machines ? 'force' : '0']);
      reference.push(performance.now() - t);
    }
    printTable(
      `machine command latency, NATS publish -> BMC acted -> result received (LED-ON/LED-OFF over ${machines} simulated BMCs, sequential)`,
      [
        { name: 'metal-bmc facade, all commands', s: stats([...auto.cold, ...auto.warm]) },
        { name: 'metal-bmc facade, first command per BMC', s: stats(auto.cold) },
        { name: 'metal-bmc facade, later commands (pooled)', s: stats(auto.warm) },
        { name: 'metal-bmc IPMI only, all commands', s: stats([...ipmi.cold, ...ipmi.warm]) },
        { name: 'metal-bmc IPMI only, first command per BMC', s: stats(ipmi.cold) },
        { name: 'ipmitool chassis identify (process per command)', s: stats(reference) },
      ],
      'ipmitool chassis identify (process per command)',
    );
  } finally {
    await nats.stop();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchCommandLatency(Number(process.argv[2] ?? 1000));
}
