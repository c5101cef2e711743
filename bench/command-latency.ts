/**
 * Machine command latency from NATS publish to the result received (the daemon publishes the
 * result after the BMC acknowledged), LED-ON/LED-OFF to the simulated BMCs, sequential, N
 * commands per protocol (default 1,000): the first command to each BMC (login and handshake)
 * apart from the later ones (pooled connections), for the facade (auto: Redfish or IPMI by
 * vendor) and for IPMI only. Reference in the same run: `ipmitool chassis identify` processes
 * doing the same commands on the same BMCs. The fleet runs in a child process; nats-server is
 * Debian's, with JetStream.
 * Usage: npm run bench -- command-latency [N] (N commands per protocol, default 1,000; at least
 * the 50 machines, so that every BMC gets a first command)
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
import { VENDOR_PROFILES, vendorOfManufacturer } from '../src/outband/vendors.js';
import { startCommandService } from '../src/parts/commands.js';
import { startFleetProcess, type FleetProcess } from './fleet-process.js';
import { latency, timeCounting, type Timed } from './report.js';
import { begin, type FigureInput, type Side } from './results.js';

const run = promisify(execFile);
const MACHINES = 50;
/** ipmitool commands for the reference (each is a process, about 40 ms) */
const IPMITOOL_COMMANDS = 300;
const RESULT_TIMEOUT_MS = 60_000;

const ledOf = (i: number) => (i % (2 * MACHINES) < MACHINES ? 'LED-ON' : 'LED-OFF');

/** Latencies of the first command per BMC (cold: login and handshake) and of the rest (warm: pooled connections); failed commands apart. */
async function viaNats(fleet: FleetProcess, natsUrl: string, protocol: Protocol, n: number): Promise<{ cold: Timed; warm: Timed }> {
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
  const cold: Timed = { samples: [], failures: 0 };
  const warm: Timed = { samples: [], failures: 0 };
  const iterator = results[Symbol.asyncIterator]();
  try {
    for (let i = 0; i < n; i++) {
      const host = fleet.addresses[i % MACHINES]!;
      const event = { type: 'command', cmd: { target: `m-${i % MACHINES}`, cmd: ledOf(i), ipmi: { address: `${host}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } };
      const into = i < MACHINES ? cold : warm;
      const t = performance.now();
      publisher.publish(subject, JSON.stringify(event));
      let timer: NodeJS.Timeout | undefined;
      const msg = await Promise.race([iterator.next(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no result within ${RESULT_TIMEOUT_MS} ms`)), RESULT_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
      const ms = performance.now() - t;
      if (msg.done) throw new Error('the result subscription ended');
      const result = JSON.parse(msg.value.string()) as { ok: boolean; error?: string };
      if (result.ok) into.samples.push(ms);
      else {
        into.failures++;
        into.firstError ??= result.error ?? msg.value.string();
      }
    }
  } finally {
    await service.stop(5000);
    await pool.close();
    await publisher.close();
    await nc.close();
  }
  return { cold, warm };
}

export async function benchCommandLatency(n = 1000): Promise<void> {
  if (n < MACHINES) throw new Error(`command-latency needs N >= ${MACHINES} (one first command per machine), not ${n}`);
  const refN = Math.min(n, IPMITOOL_COMMANDS);
  const out = begin('command-latency', 'machine command latency, NATS publish -> BMC acted -> result received (LED-ON/LED-OFF, sequential, simulated BMCs in a separate process)', {
    commandsPerProtocol: n,
    machines: MACHINES,
    ipmitoolCommands: refN,
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-cmd-'));
  const fleet = await startFleetProcess({ count: MACHINES });
  const nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
  try {
    const machines = (await fleet.control('GET', '/machines')) as Array<{ manufacturer: string }>;
    const identifyOverIpmi = machines.filter((m) => VENDOR_PROFILES[vendorOfManufacturer(m.manufacturer)].identify === 'ipmi').length;
    await viaNats(fleet, nats.url, 'ipmi', 20); // warm-up
    const auto = await viaNats(fleet, nats.url, 'auto', n);
    const ipmi = await viaNats(fleet, nats.url, 'ipmi', n);
    const ipmitool = await timeCounting(refN, (i) =>
      run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', fleet.addresses[i % MACHINES]!, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password, 'chassis', 'identify', ledOf(i) === 'LED-ON' ? 'force' : '0']),
    );
    for (const [what, t] of [['facade, first', auto.cold], ['facade, later', auto.warm], ['IPMI, first', ipmi.cold], ['IPMI, later', ipmi.warm], ['ipmitool', ipmitool]] as const) {
      if (t.firstError) out.note(`${what}: ${t.failures} failed, first: ${t.firstError}`);
    }

    const reference = latency(`ipmitool chassis identify, a process per command`, ipmitool);
    // with N = the number of machines there is no later command
    const record = (timed: Timed, figure: Omit<FigureInput, keyof Side> & Pick<Side, 'name'>) => {
      if (timed.samples.length + timed.failures > 0) out.record({ ...latency(figure.name, timed), ...figure });
    };
    const natsPath = 'ours also goes NATS publish -> JetStream -> command service -> result published back';
    record(ipmi.cold, {
      name: 'IPMI only, first command to a BMC',
      unit: 'ms',
      reference,
      better: 'lower',
      differs: `both open an IPMI session and send Chassis Identify; ipmitool also starts a process and closes the session; ${natsPath}`,
    });
    record(ipmi.warm, {
      name: 'IPMI only, later commands (pooled session)',
      unit: 'ms',
      reference,
      better: 'lower',
      differs: `ours sends Chassis Identify over a pooled session; ipmitool starts a process and opens and closes a session per command; ${natsPath}`,
    });
    record(auto.cold, {
      name: 'facade, first command to a BMC',
      unit: 'ms',
      reference,
      better: 'lower',
      differs: `ours first probes Redfish (login, vendor detection), then sets the LED by vendor: Redfish IndicatorLED on ${machines.length - identifyOverIpmi} of the ${machines.length} machines, IPMI Chassis Identify on ${identifyOverIpmi}; ${natsPath}`,
    });
    record(auto.warm, {
      name: 'facade, later commands (pooled connection)',
      unit: 'ms',
      reference,
      better: 'lower',
      differs: `ours sets the LED over a pooled connection, Redfish IndicatorLED on ${machines.length - identifyOverIpmi} of the ${machines.length} machines, IPMI Chassis Identify on ${identifyOverIpmi}; ${natsPath}`,
    });
  } finally {
    await nats.stop();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchCommandLatency(Number(process.argv[2] ?? 1000));
}
