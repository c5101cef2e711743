/**
 * The state of one simulated machine, shared by its IPMI server, its Redfish server
 * and its serial line, so the two protocol views always agree.
 * Everything is derived deterministically from (seed, index).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { BmcError } from '../errors.js';
import { cidrSize, nthHost, parseCidr } from '../net/cidr.js';
import type { SimTiming } from './latency.js';
import { quirksOfVariant, type SimQuirkName } from './quirks.js';
import type { SessionsExhaustedAnswer } from './quirks-redfish.js';

export type SimPower = 'on' | 'off';
export type SimBoot = 'none' | 'pxe' | 'disk' | 'bios';
/** what a machine actually booted: an override's device, or the first entry of its BIOS boot order */
export type SimBootDevice = 'pxe' | 'disk' | 'bios';

/** One UEFI boot option (Redfish BootOption), as the BIOS lists it. */
export interface SimBootOption {
  /** BootOptionReference and Id, e.g. Boot0001 */
  id: string;
  displayName: string;
  uefiDevicePath: string;
  device: 'pxe' | 'disk';
}

/** How a BIOS/BMC treats boot overrides beyond the standard. */
export interface SimBootQuirks {
  /**
   * Redfish `Continuous` lasts one boot, then the override is gone and BootOrder decides again:
   * the iDRAC defect 159467 of Dell BIOS versions up to 2.75.75 (IPMI persistent flags are kept).
   */
  continuousLastsOneBoot: boolean;
  /**
   * A Redfish BootOrder PATCH of the System is a pending value, applied at the next reset, as on
   * iDRAC: the PATCH creates a BIOS config job that runs when the host restarts, and the System
   * shows the old order until then (dell/iDRAC-Redfish-Scripting#91, #250).
   */
  bootOrderAtReset: boolean;
  /** Set System Boot Options parameter 0 (set in progress) is answered 0x80 "parameter not supported" */
  noSetInProgress: boolean;
}

export interface SimFru {
  boardManufacturer: string;
  boardProduct: string;
  boardSerial: string;
  boardPartNumber: string;
  productManufacturer: string;
  productName: string;
  productPartNumber: string;
  productSerial: string;
  chassisPartNumber: string;
  chassisSerial: string;
}

export interface SimPowerSupply {
  name: string;
  health: 'OK' | 'Warning' | 'Critical';
  state: 'Enabled' | 'Absent' | 'UnavailableOffline';
  watts: number;
}

export interface SimFaults {
  /** drop every datagram / never answer HTTP */
  noAnswer: boolean;
  /** extra delay before each answer, in ms */
  delayMs: number;
  /** share of datagrams to drop, 0..1 */
  dropRate: number;
  /** reject every password */
  wrongCredentials: boolean;
  /** Redfish answers every request with this status (500, 503) */
  redfishStatus: number | null;
  /** Redfish accepts connections and never answers */
  redfishHang: boolean;
  /** the next Redfish request for this path (its query aside) is accepted and never answered, the ones after it are (a straggler: a web server worker stuck on one request); cleared by that request */
  redfishStraggler: string | null;
  /** no Redfish service at all (IPMI-only BMC) */
  redfishDisabled: boolean;
  /** every IPMI session slot is taken */
  sessionsFull: boolean;
  /** firmware update tasks started from now on run this long (ms) instead of the server's task duration */
  firmwareTaskMs: number | null;
  /** Redfish actions (POST .../Actions/...) and IPMI Chassis Control are carried out but never answered: the BMC acted, the client times out */
  actSilently: boolean;
  /** Redfish actions (POST .../Actions/...) are refused with this status and not carried out */
  actRefused: number | null;
  /** IPMI Chassis Control is refused with this completion code and not carried out (0xd5: not in the present state) */
  ipmiActRefused: number | null;
  /** Redfish actions (POST .../Actions/...) are carried out, then answered with this status (a BMC or proxy that answers 500 or 504 after the action took effect) */
  actStatus: number | null;
  /** Redfish messages in a PATCH's answer quote the request's X-Auth-Token and Authorization header (a broken or hostile BMC echoing what it was sent) */
  echoCredentials: boolean;
}

export const NO_FAULTS: Readonly<SimFaults> = Object.freeze({
  noAnswer: false,
  delayMs: 0,
  dropRate: 0,
  wrongCredentials: false,
  redfishStatus: null,
  redfishHang: false,
  redfishStraggler: null,
  redfishDisabled: false,
  sessionsFull: false,
  firmwareTaskMs: null,
  actSilently: false,
  actRefused: null,
  ipmiActRefused: null,
  actStatus: null,
  echoCredentials: false,
});

export interface SimMachineState {
  index: number;
  /** BMC address on loopback, e.g. 127.10.0.1 */
  address: string;
  mac: string;
  /** SMBIOS system UUID as `dmidecode -s system-uuid` would print it (lowercase) */
  uuid: string;
  fru: SimFru;
  bmcVersion: string;
  biosVersion: string;
  manufacturer: string;
  model: string;
  /** the vendor variant the machine was drawn from */
  variant: SimVariantName;
  power: SimPower;
  /** the boot override: device ('none': no override), all future boots or the next one, UEFI */
  boot: SimBoot;
  bootPersistent: boolean;
  bootUefi: boolean;
  /** which protocol set the override last */
  bootSetBy: 'ipmi' | 'redfish';
  bootOptions: SimBootOption[];
  /** BIOS boot order: ids of bootOptions, first tried first */
  bootOrder: string[];
  /** a BootOrder written but not applied yet (bootQuirks.bootOrderAtReset): becomes bootOrder when the host next starts */
  pendingBootOrder?: string[];
  /** the last boot: its device and whether an override or the boot order chose it */
  lastBoot: { device: SimBootDevice; via: 'override' | 'boot-order'; count: number } | null;
  bootQuirks: SimBootQuirks;
  identify: boolean;
  powerWatts: { average: number; min: number; max: number };
  powerSupplies: SimPowerSupply[];
  faults: SimFaults;
  /** protocol quirks of real BMCs this machine shows (quirks.ts), read on every request */
  quirks: Set<SimQuirkName>;
  /** redfish-sessions-exhausted: whose answer the session POST gets (iDRAC's when unset) */
  sessionsExhaustedAnswer?: SessionsExhaustedAnswer;
  /** latency model and request log (latency.ts), when the fleet has them */
  timing?: SimTiming;
}

export type SimEvent =
  | { kind: 'power'; power: SimPower; action: string }
  | { kind: 'boot'; boot: SimBoot; persistent: boolean; uefi: boolean }
  | { kind: 'boot-order'; order: string[] }
  | { kind: 'booted'; device: SimBootDevice; via: 'override' | 'boot-order' }
  | { kind: 'identify'; on: boolean }
  | { kind: 'firmware'; target: 'bios' | 'bmc'; uri: string };

/** A simulated machine: its state plus an event stream of every change made by a client. */
export class SimMachine extends EventEmitter<{ change: [SimEvent] }> {
  constructor(public readonly state: SimMachineState) {
    super();
  }

  /**
   * A power action. Powering on an off machine, and a reset or power cycle, start the BIOS: it
   * boots the override's device (a one-time override is cleared by that), else the first entry
   * of its boot order. `action` is the IPMI chassis control or Redfish ResetType name.
   */
  setPower(power: SimPower, action: string): void {
    const starts = power === 'on' && (this.state.power === 'off' || RESTARTS.has(action));
    this.state.power = power;
    if (starts) this.applyPendingBootOrder();
    const booted = starts ? this.boot() : undefined;
    this.emit('change', { kind: 'power', power, action });
    if (booted) this.emit('change', { kind: 'booted', ...booted });
  }

  setBoot(boot: SimBoot, persistent: boolean, uefi: boolean, by: 'ipmi' | 'redfish' = 'ipmi'): void {
    Object.assign(this.state, { boot, bootPersistent: boot !== 'none' && persistent, bootUefi: uefi, bootSetBy: by });
    this.emit('change', { kind: 'boot', boot, persistent: this.state.bootPersistent, uefi });
  }

  setBootOrder(order: string[]): void {
    this.state.bootOrder = [...order];
    this.emit('change', { kind: 'boot-order', order: [...order] });
  }

  /**
   * A BootOrder written over Redfish: applied at once, or, on a BMC that applies it at the next
   * reset (bootQuirks.bootOrderAtReset), kept pending until the host starts.
   */
  writeBootOrder(order: string[]): void {
    if (this.state.bootQuirks.bootOrderAtReset) this.state.pendingBootOrder = [...order];
    else this.setBootOrder(order);
  }

  /** The config job of a pending BootOrder runs as the host starts, before the BIOS picks a device. */
  private applyPendingBootOrder(): void {
    const pending = this.state.pendingBootOrder;
    if (pending === undefined) return;
    delete this.state.pendingBootOrder;
    this.setBootOrder(pending);
  }

  /** What the BIOS boots now; consumes a one-time override. */
  private boot(): { device: SimBootDevice; via: 'override' | 'boot-order' } {
    const s = this.state;
    let result: { device: SimBootDevice; via: 'override' | 'boot-order' };
    if (s.boot !== 'none') {
      result = { device: s.boot, via: 'override' };
      const forgotten = s.bootQuirks.continuousLastsOneBoot && s.bootSetBy === 'redfish';
      if (!s.bootPersistent || forgotten) Object.assign(s, { boot: 'none', bootPersistent: false });
    } else {
      const first = s.bootOrder.map((id) => s.bootOptions.find((o) => o.id === id)).find((o) => o !== undefined);
      // nothing bootable in the order: UEFI firmware drops into setup
      result = { device: first?.device ?? 'bios', via: 'boot-order' };
    }
    s.lastBoot = { ...result, count: (s.lastBoot?.count ?? 0) + 1 };
    return result;
  }

  setIdentify(on: boolean): void {
    this.state.identify = on;
    this.emit('change', { kind: 'identify', on });
  }

  recordFirmware(target: 'bios' | 'bmc', uri: string): void {
    this.emit('change', { kind: 'firmware', target, uri });
  }
}

/** Power actions (IPMI chassis control, Redfish ResetType) that restart a running machine. */
const RESTARTS = new Set(['cycle', 'reset', 'ForceRestart', 'GracefulRestart', 'PowerCycle']);

function digest(seed: string, index: number, what: string): Buffer {
  return createHash('sha256').update(`${seed}/${index}/${what}`).digest();
}

interface SimVariant {
  manufacturer: string;
  model: string;
  bmc: (d: Buffer) => string;
  bios: (d: Buffer) => string;
  quirks?: Partial<SimBootQuirks>;
  /** the host serial console is an SSH command on the BMC (iDRAC: `console com2`; ssh-console-server.ts), beside SOL */
  console?: 'ssh';
}

/**
 * The vendor variants a fleet can be made of. A fleet uses DEFAULT_VARIANTS unless told
 * otherwise; the Dell-like ones are opt-in (`--variants`): their serial console is SSH to the
 * iDRAC, served on a port of its own (`--ssh-port`, default 22, which needs root).
 */
export const SIM_VARIANTS = {
  supermicro: { manufacturer: 'Supermicro', model: 'X11DPT-B', bmc: (d) => `1.${70 + (d[0]! % 10)}.${d[1]! % 20}`, bios: (d) => `3.${d[2]! % 5}` },
  lenovo: { manufacturer: 'Lenovo', model: 'ThinkSystem SR630', bmc: (d) => `8.${d[0]! % 9}0`, bios: (d) => `IVE1${60 + (d[2]! % 30)}E` },
  gigabyte: { manufacturer: 'Gigabyte', model: 'MZ72-HB0', bmc: (d) => `12.61.${d[1]! % 30}`, bios: (d) => `R${d[2]! % 20}`, quirks: { noSetInProgress: true } },
  /** iDRAC with a BIOS after the fix of the Continuous defect */
  dell: { manufacturer: 'Dell Inc.', model: 'PowerEdge R6525', bmc: (d) => `7.10.${30 + (d[0]! % 40)}.00`, bios: (d) => `2.${76 + (d[2]! % 10)}.${d[1]! % 5}`, quirks: { bootOrderAtReset: true }, console: 'ssh' },
  /** iDRAC with an old BIOS: Redfish Continuous lasts one boot */
  'dell-old-bios': {
    manufacturer: 'Dell Inc.',
    model: 'PowerEdge R630',
    bmc: (d) => `2.75.75.${70 + (d[0]! % 5)}`,
    bios: (d) => `2.${10 + (d[2]! % 10)}.${d[1]! % 5}`,
    quirks: { continuousLastsOneBoot: true, bootOrderAtReset: true },
    console: 'ssh',
  },
} satisfies Record<string, SimVariant>;

export type SimVariantName = keyof typeof SIM_VARIANTS;
export const DEFAULT_VARIANTS: readonly SimVariantName[] = ['supermicro', 'lenovo', 'gigabyte'];

/** Whether the machine's BMC serves the host serial console over SSH (the Dell-like variants). */
export function servesSshConsole(state: Pick<SimMachineState, 'variant'>): boolean {
  const variant: SimVariant = SIM_VARIANTS[state.variant];
  return variant.console === 'ssh';
}

export function isSimVariant(name: string): name is SimVariantName {
  return Object.hasOwn(SIM_VARIANTS, name);
}

/** A PXE-capable NIC and a disk with an installed OS; the BIOS tries the NIC first, as on a machine waiting for metal-stack. */
function bootOptionsOf(mac: string, uuid: string): SimBootOption[] {
  return [
    { id: 'Boot0001', displayName: 'PXE Device 1: Integrated NIC 1 Port 1 Partition 1', uefiDevicePath: `PciRoot(0x0)/Pci(0x1C,0x0)/Pci(0x0,0x0)/MAC(${mac.replaceAll(':', '').toUpperCase()},0x1)/IPv4(0.0.0.0)`, device: 'pxe' },
    { id: 'Boot0002', displayName: 'debian', uefiDevicePath: `HD(1,GPT,${uuid.toUpperCase()},0x800,0x100000)/\\EFI\\debian\\grubx64.efi`, device: 'disk' },
  ];
}

/** The nth host address in an IPv4 CIDR (1-based: the network and broadcast addresses are never used). */
export function nthAddress(cidr: string, n: number): string {
  const block = parseCidr(cidr);
  if (n < 1 || n >= cidrSize(block) - 1) throw new BmcError('INVALID_ARGUMENT', `CIDR ${cidr} has no host number ${n}`);
  return nthHost(block, n);
}

/** Deterministic state for machine `index` (0-based) of a fleet. */
export function createMachineState(seed: string, index: number, cidr = '127.10.0.0/16', variants: readonly SimVariantName[] = DEFAULT_VARIANTS): SimMachineState {
  if (variants.length === 0) throw new BmcError('INVALID_ARGUMENT', 'a fleet needs at least one vendor variant');
  const id = digest(seed, index, 'uuid');
  id[6] = (id[6]! & 0x0f) | 0x40; // version 4
  id[8] = (id[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = id.subarray(0, 16).toString('hex');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  const m = digest(seed, index, 'mac');
  const mac = ['0c', 'c4', '7a', m[0]!, m[1]!, m[2]!].map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b)).join(':');
  const v = digest(seed, index, 'versions');
  const variant = variants[v[3]! % variants.length]!;
  const vendor: SimVariant = SIM_VARIANTS[variant];
  const serial = (prefix: string) => `${prefix}${digest(seed, index, prefix).toString('hex').slice(0, 10).toUpperCase()}`;
  const w = digest(seed, index, 'watts');
  const average = 150 + (w[0]! % 150);
  return {
    index,
    address: nthAddress(cidr, index + 1),
    mac,
    uuid,
    fru: {
      boardManufacturer: vendor.manufacturer,
      boardProduct: vendor.model,
      boardSerial: serial('BS'),
      boardPartNumber: vendor.model,
      productManufacturer: vendor.manufacturer,
      productName: `${vendor.model} server`,
      productPartNumber: `SYS-${vendor.model}`,
      productSerial: serial('PS'),
      chassisPartNumber: `CSE-${vendor.model}`,
      chassisSerial: serial('CS'),
    },
    bmcVersion: vendor.bmc(v),
    biosVersion: vendor.bios(v),
    manufacturer: vendor.manufacturer,
    model: vendor.model,
    variant,
    power: w[1]! % 4 === 0 ? 'off' : 'on',
    boot: 'none',
    bootPersistent: false,
    bootUefi: true,
    bootSetBy: 'ipmi',
    bootOptions: bootOptionsOf(mac, uuid),
    bootOrder: ['Boot0001', 'Boot0002'],
    lastBoot: null,
    bootQuirks: { continuousLastsOneBoot: false, bootOrderAtReset: false, noSetInProgress: false, ...vendor.quirks },
    identify: false,
    powerWatts: { average, min: average - 20 - (w[2]! % 30), max: average + 40 + (w[3]! % 80) },
    powerSupplies: [
      { name: 'PSU1', health: 'OK', state: 'Enabled', watts: 800 },
      { name: 'PSU2', health: w[4]! % 10 === 0 ? 'Critical' : 'OK', state: 'Enabled', watts: 800 },
    ],
    faults: { ...NO_FAULTS },
    quirks: new Set(quirksOfVariant(variant)),
  };
}

export function hasQuirk(state: Pick<SimMachineState, 'quirks'>, name: SimQuirkName): boolean {
  return state.quirks.has(name);
}
