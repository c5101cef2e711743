/**
 * The state of one simulated machine, shared by its IPMI server, its Redfish server
 * and its serial line, so the two protocol views always agree.
 * Everything is derived deterministically from (seed, index).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { BmcError } from '../errors.js';
import { cidrSize, nthHost, parseCidr } from '../net/cidr.js';

export type SimPower = 'on' | 'off';
export type SimBoot = 'none' | 'pxe' | 'disk' | 'bios';

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
  /** no Redfish service at all (IPMI-only BMC) */
  redfishDisabled: boolean;
  /** every IPMI session slot is taken */
  sessionsFull: boolean;
  /** firmware update tasks started from now on run this long (ms) instead of the server's task duration */
  firmwareTaskMs: number | null;
}

export const NO_FAULTS: Readonly<SimFaults> = Object.freeze({
  noAnswer: false,
  delayMs: 0,
  dropRate: 0,
  wrongCredentials: false,
  redfishStatus: null,
  redfishHang: false,
  redfishDisabled: false,
  sessionsFull: false,
  firmwareTaskMs: null,
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
  power: SimPower;
  boot: SimBoot;
  bootPersistent: boolean;
  bootUefi: boolean;
  identify: boolean;
  powerWatts: { average: number; min: number; max: number };
  powerSupplies: SimPowerSupply[];
  faults: SimFaults;
}

export type SimEvent =
  | { kind: 'power'; power: SimPower; action: string }
  | { kind: 'boot'; boot: SimBoot; persistent: boolean; uefi: boolean }
  | { kind: 'identify'; on: boolean }
  | { kind: 'firmware'; target: 'bios' | 'bmc'; uri: string };

/** A simulated machine: its state plus an event stream of every change made by a client. */
export class SimMachine extends EventEmitter<{ change: [SimEvent] }> {
  constructor(public readonly state: SimMachineState) {
    super();
  }

  setPower(power: SimPower, action: string): void {
    this.state.power = power;
    this.emit('change', { kind: 'power', power, action });
  }

  setBoot(boot: SimBoot, persistent: boolean, uefi: boolean): void {
    Object.assign(this.state, { boot, bootPersistent: persistent, bootUefi: uefi });
    this.emit('change', { kind: 'boot', boot, persistent, uefi });
  }

  setIdentify(on: boolean): void {
    this.state.identify = on;
    this.emit('change', { kind: 'identify', on });
  }

  recordFirmware(target: 'bios' | 'bmc', uri: string): void {
    this.emit('change', { kind: 'firmware', target, uri });
  }
}

function digest(seed: string, index: number, what: string): Buffer {
  return createHash('sha256').update(`${seed}/${index}/${what}`).digest();
}

const VENDORS = [
  { manufacturer: 'Supermicro', model: 'X11DPT-B', bmc: (d: Buffer) => `1.${70 + (d[0]! % 10)}.${d[1]! % 20}`, bios: (d: Buffer) => `3.${d[2]! % 5}` },
  { manufacturer: 'Lenovo', model: 'ThinkSystem SR630', bmc: (d: Buffer) => `8.${d[0]! % 9}0`, bios: (d: Buffer) => `IVE1${60 + (d[2]! % 30)}E` },
  { manufacturer: 'Gigabyte', model: 'MZ72-HB0', bmc: (d: Buffer) => `12.61.${d[1]! % 30}`, bios: (d: Buffer) => `R${d[2]! % 20}` },
] as const;

/** The nth host address in an IPv4 CIDR (1-based: the network and broadcast addresses are never used). */
export function nthAddress(cidr: string, n: number): string {
  const block = parseCidr(cidr);
  if (n < 1 || n >= cidrSize(block) - 1) throw new BmcError('INVALID_ARGUMENT', `CIDR ${cidr} has no host number ${n}`);
  return nthHost(block, n);
}

/** Deterministic state for machine `index` (0-based) of a fleet. */
export function createMachineState(seed: string, index: number, cidr = '127.10.0.0/16'): SimMachineState {
  const id = digest(seed, index, 'uuid');
  id[6] = (id[6]! & 0x0f) | 0x40; // version 4
  id[8] = (id[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = id.subarray(0, 16).toString('hex');
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  const m = digest(seed, index, 'mac');
  const mac = ['0c', 'c4', '7a', m[0]!, m[1]!, m[2]!].map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b)).join(':');
  const v = digest(seed, index, 'versions');
  const vendor = VENDORS[v[3]! % VENDORS.length]!;
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
    power: w[1]! % 4 === 0 ? 'off' : 'on',
    boot: 'none',
    bootPersistent: false,
    bootUefi: true,
    identify: false,
    powerWatts: { average, min: average - 20 - (w[2]! % 30), max: average + 40 + (w[3]! % 80) },
    powerSupplies: [
      { name: 'PSU1', health: 'OK', state: 'Enabled', watts: 800 },
      { name: 'PSU2', health: w[4]! % 10 === 0 ? 'Critical' : 'OK', state: 'Enabled', watts: 800 },
    ],
    faults: { ...NO_FAULTS },
  };
}
