/**
 * The Outband interface over IPMI alone: one lazily opened RMCP+ session reused for every
 * operation, reopened when the BMC dropped it, closed by `close()`.
 */
import type { Duplex } from 'node:stream';
import { beforeActing, BmcError } from '../errors.js';
import { BOOT_DEVICE_BYTE, readBootFlags, writeBootFlags } from '../ipmi/boot.js';
import { chassisControl, chassisIdentify, getChassisStatus, getDeviceId, getSystemGuid, readFruData, type ChassisAction, type DeviceId } from '../ipmi/commands.js';
import { getPowerReading } from '../ipmi/dcmi.js';
import { parseFru } from '../ipmi/fru.js';
import { guidToUuid, type GuidEncoding } from '../ipmi/guid.js';
import { openSession, type IpmiSession, type SessionOptions } from '../ipmi/session.js';
import { openSol } from '../ipmi/sol.js';
import { bootOverrideOfIpmi, ipmiBootFlags } from './boot.js';
import { fruToMetalApi, LED_OF_IDENTIFY, powerMetricOfDcmi } from './ipmi-report.js';
import type { BmcReport, LedReading, MetalFru, OperationOptions, Outband, PowerMetric } from './types.js';

export interface IpmiOutbandOptions extends Omit<SessionOptions, 'signal'> {
  /** how this BMC encodes Get System GUID; 'smbios' unless the vendor table says otherwise */
  guidEncoding?: GuidEncoding;
  vendor?: string;
  /** boot flags data byte 2 for disk (the vendor table's ipmiDiskDevice; default 0x08) */
  diskDevice?: number;
}
/**
 * An optional command the BMC lacks or answers with garbage: a completion code (0xC1 invalid
 * command and friends) or an undecodable answer. The report goes on without it.
 */
export function optionalMissing(err: unknown): boolean {
  return err instanceof BmcError && (err.code === 'COMPLETION_CODE' || err.code === 'DECODE');
}


/** What IPMI says about the machine's identity: the report fields it can fill and the GUID. */
export interface IpmiIdentity {
  /** absent when the BMC lacks Get System GUID (an optional command) */
  guid?: Buffer;
  /** Get Device ID firmware revision as ipmitool prints it, e.g. "1.74" */
  bmcVersion: string;
  fru: MetalFru;
  problems: string[];
}

/** Get Chassis Status and the DCMI power reading: the part of info() Redfish may lack. */
export interface IpmiStatus {
  powerState: 'ON' | 'OFF';
  led: LedReading;
  powerMetric?: PowerMetric;
  problems: string[];
}

/** The report over IPMI alone, and the GUID its UUID was decoded from (for a caller that decides the UUID itself: the facade). */
export interface IpmiReport {
  report: BmcReport;
  /** absent when the BMC lacks Get System GUID */
  guid?: Buffer;
}

export interface IpmiOutband extends Outband {
  /** info(), with the GUID read for it */
  report(options?: OperationOptions): Promise<IpmiReport>;
  /** the underlying session, opened on first use */
  session(options?: OperationOptions): Promise<IpmiSession>;
  /** Get Device ID, read once per session */
  deviceId(options?: OperationOptions): Promise<DeviceId>;
  /** Get System GUID, read once per session */
  guid(options?: OperationOptions): Promise<Buffer>;
  status(options?: OperationOptions): Promise<IpmiStatus>;
  /** Get Device ID, Get System GUID and the FRU only (read once per session): the part of info() the report fields need */
  identity(options?: OperationOptions): Promise<IpmiIdentity>;
  chassis(action: ChassisAction, options?: OperationOptions): Promise<void>;
}

export function ipmiOutband(options: IpmiOutbandOptions): IpmiOutband {
  const address = `${options.host}:${options.port ?? 623}`;
  let current: Promise<IpmiSession> | undefined;
  /** the signal of the caller whose open `current` is (its deadline or cancellation ends that open) */
  const openers = new WeakMap<Promise<IpmiSession>, AbortSignal>();
  let closed = false;
  const diskDevice = options.diskDevice ?? BOOT_DEVICE_BYTE.disk;

  function session(o: OperationOptions = {}): Promise<IpmiSession> {
    if (closed) return Promise.reject(new BmcError('CLOSED', `connection to BMC ${address} is closed`));
    if (current) {
      const existing = current;
      // the first caller to find it dropped opens the next one; the others wait for that one (a
      // reopen each would leave all but the last session open on the BMC, holding its slots)
      return existing.then(
        (s) => (s.state.kind === 'established' ? s : current === existing ? reopen(o) : session(o)),
        (err: unknown) => {
          // the open was another caller's, who gave up (cancelled, or its deadline: whatever the
          // reason its signal carries): a caller whose own signal still runs opens its own
          if (openers.get(existing)?.aborted === true && !o.signal?.aborted && !closed) return session(o);
          throw err;
        },
      );
    }
    return reopen(o);
  }

  function reopen(o: OperationOptions): Promise<IpmiSession> {
    const opening = openSession({ ...options, ...(o.signal ? { signal: o.signal } : {}) });
    if (o.signal) openers.set(opening, o.signal);
    current = opening;
    opening.catch(() => {
      if (current === opening) current = undefined;
    });
    return opening;
  }

  /** `fn` in the session; a session that cannot be opened fails as not sent (nothing reached the BMC's commands). */
  async function run<T>(o: OperationOptions | undefined, fn: (s: IpmiSession) => Promise<T>): Promise<T> {
    const s = await beforeActing(session(o));
    return fn(s);
  }

  const signalOf = (o?: OperationOptions) => (o?.signal ? { signal: o.signal } : {});

  /**
   * A reset or power cycle, or power on for a machine that is off (many BMCs refuse a reset then).
   * The session and the power state read before the chassis control fail as not sent: nothing
   * acted yet, so the other protocol or a second try may do it.
   */
  async function restart(action: 'reset' | 'cycle', o: OperationOptions | undefined): Promise<void> {
    const s = await beforeActing(session(o));
    const { power } = await beforeActing(getChassisStatus(s, signalOf(o)));
    await chassisControl(s, power === 'on' ? action : 'up', signalOf(o));
  }

  /**
   * What does not change while a session lives is read once per session, so that read-ahead
   * (the facade starts IPMI beside Redfish) and the report never ask twice. A failed read is
   * forgotten, so the next caller tries again.
   */
  const memos = new WeakMap<IpmiSession, Map<string, Promise<unknown>>>();
  function once<T>(s: IpmiSession, key: string, read: () => Promise<T>): Promise<T> {
    let memo = memos.get(s);
    if (memo === undefined) memos.set(s, (memo = new Map()));
    let p = memo.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = read();
      memo.set(key, p);
      p.catch(() => memo.delete(key));
    }
    return p;
  }

  async function readIdentity(s: IpmiSession, o: OperationOptions | undefined): Promise<IpmiIdentity> {
    const problems: string[] = [];
    const device = await once(s, 'device', () => getDeviceId(s, signalOf(o)));
    let guid: Buffer | undefined;
    try {
      guid = await once(s, 'guid', () => getSystemGuid(s, signalOf(o)));
    } catch (err) {
      if (!optionalMissing(err)) throw err;
      problems.push(`UUID: ${(err as Error).message}`);
    }
    let fru: MetalFru = {};
    try {
      const stopped: string[] = [];
      const parsed = parseFru(await readFruData(s, 0, signalOf(o), stopped));
      fru = fruToMetalApi(parsed);
      for (const p of [...stopped, ...parsed.problems]) problems.push(`FRU: ${p}`);
      // defects decoded past (bad checksums): the fields stand, the BMC's firmware is named once
      for (const t of parsed.tolerated ?? []) options.onEvent?.({ kind: 'fru-defect', message: `BMC ${s.remote} FRU: ${t}` });
    } catch (err) {
      problems.push(`FRU: ${(err as Error).message}`);
    }
    return { ...(guid ? { guid } : {}), bmcVersion: device.firmwareRevision, fru, problems };
  }

  async function readStatus(s: IpmiSession, o: OperationOptions | undefined): Promise<IpmiStatus> {
    const problems: string[] = [];
    const status = await getChassisStatus(s, signalOf(o));
    let powerMetric: PowerMetric | undefined;
    try {
      const reading = await getPowerReading(s, signalOf(o));
      if (reading) powerMetric = powerMetricOfDcmi(reading);
      else problems.push('PowerMetric: the BMC offers no active DCMI power reading');
    } catch (err) {
      problems.push(`PowerMetric: ${(err as Error).message}`);
    }
    if (status.identify === 'unknown') problems.push('IndicatorLED: the BMC does not report its identify state');
    return { powerState: status.power === 'on' ? 'ON' : 'OFF', led: LED_OF_IDENTIFY[status.identify], ...(powerMetric ? { powerMetric } : {}), problems };
  }

  const outband: IpmiOutband = {
    address,
    vendor: options.vendor ?? 'unknown',
    session,
    info: async (o) => (await outband.report(o)).report,
    async report(o) {
      return run(o, async (s) => {
        const missing: string[] = ['BIOSVersion: IPMI has no standard command for it', 'PowerSupplies: not available over IPMI'];
        const { guid, bmcVersion, fru, problems } = await once(s, 'identity', () => readIdentity(s, o));
        missing.push(...problems);
        const status = await readStatus(s, o);
        missing.push(...status.problems);
        const report: BmcReport = {
          // no GUID: an empty uuid, which the report cycle skips with its reason
          uuid: guid ? guidToUuid(guid, options.guidEncoding ?? 'smbios') : '',
          bmcVersion,
          biosVersion: '',
          fru,
          powerState: status.powerState,
          indicatorLED: status.led,
          powerSupplies: [],
          source: 'ipmi',
          fieldSources: Object.fromEntries(['bmcVersion', ...Object.keys(fru)].map((f) => [f, 'ipmi'])),
          missing,
          ...(status.powerMetric ? { powerMetric: status.powerMetric } : {}),
        };
        return { report, ...(guid ? { guid } : {}) };
      });
    },
    deviceId: (o) => run(o, (s) => once(s, 'device', () => getDeviceId(s, signalOf(o)))),
    guid: (o) => run(o, (s) => once(s, 'guid', () => getSystemGuid(s, signalOf(o)))),
    status: (o) => run(o, (s) => readStatus(s, o)),
    identity: (o) => run(o, (s) => once(s, 'identity', () => readIdentity(s, o))),
    chassis: (action, o) => run(o, (s) => chassisControl(s, action, signalOf(o))),
    powerOn: (o) => outband.chassis('up', o),
    powerOff: (o) => outband.chassis('down', o),
    powerReset: (o) => restart('reset', o),
    powerCycle: (o) => restart('cycle', o),
    bootFrom: (target, o) =>
      run(o, async (s) => {
        const flags = ipmiBootFlags(target, { persistent: o?.persistent ?? true, uefi: o?.uefi ?? true, diskDevice });
        await writeBootFlags(s, flags, signalOf(o));
      }),
    bootOverride: (o) => run(o, async (s) => bootOverrideOfIpmi(await readBootFlags(s, signalOf(o)), diskDevice)),
    identify: (on, o) => run(o, (s) => chassisIdentify(s, on, signalOf(o))),
    async openConsole(o): Promise<Duplex> {
      // SOL gets a session of its own, so that console traffic and commands never share a lifetime.
      const s = await openSession({ ...options, keepaliveMs: options.keepaliveMs ?? 20_000, ...signalOf(o) });
      try {
        return await openSol(s, { takeOver: o?.takeOver ?? false, closeSession: true, ...signalOf(o), ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
      } catch (err) {
        await s.close();
        throw err;
      }
    },
    async updateFirmware(kind) {
      throw new BmcError('UNSUPPORTED', `firmware update (${kind}) needs Redfish; BMC ${address} is driven over IPMI only`);
    },
    async watchFirmware(kind) {
      throw new BmcError('UNSUPPORTED', `firmware update (${kind}) needs Redfish; BMC ${address} is driven over IPMI only`);
    },
    async close() {
      closed = true;
      const s = current;
      current = undefined;
      if (s) await s.then((x) => x.close()).catch(() => undefined);
    },
  };
  return outband;
}
