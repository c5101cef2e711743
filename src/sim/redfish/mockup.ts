/**
 * Templates from the DMTF mockup "public-rackmount1" (src/sim/mockup/, BSD-3-Clause), read
 * once per process (from mockup-files.ts) and kept parsed per vendor with the mockup's resource ids (437XR1138R2,
 * BMC, 1U) replaced by the vendor's. Callers get a fresh copy to overlay.
 */
import { readMockupFile } from './mockup-files.js';
import type { RedfishVendor } from './vendors.js';

export type Json = Record<string, unknown>;

/** The mockup resources the server builds on, by their path below /redfish/v1/. */
export type MockupPath =
  | ''
  | 'SessionService'
  | 'SessionService/Sessions'
  | 'SessionService/Sessions/1234567890ABCDEF'
  | 'Systems'
  | 'Systems/437XR1138R2'
  | 'Managers'
  | 'Managers/BMC'
  | 'Chassis'
  | 'Chassis/1U'
  | 'Chassis/1U/Power'
  | 'Chassis/1U/PowerSubsystem'
  | 'Chassis/1U/PowerSubsystem/PowerSupplies'
  | 'Chassis/1U/PowerSubsystem/PowerSupplies/Bay1'
  | 'Chassis/1U/EnvironmentMetrics'
  | 'UpdateService'
  | 'UpdateService/SimpleUpdateActionInfo'
  | 'UpdateService/FirmwareInventory'
  | 'UpdateService/FirmwareInventory/BMC'
  | 'UpdateService/FirmwareInventory/BIOS'
  | 'TaskService'
  | 'TaskService/Tasks'
  | 'TaskService/Tasks/545';

const raw = new Map<MockupPath, string>();
const parsed = new Map<string, Json>();

function rawText(path: MockupPath): string {
  let text = raw.get(path);
  if (text === undefined) {
    text = readMockupFile(path);
    raw.set(path, text);
  }
  return text;
}

/** The mockup resource at `path` with the vendor's ids, parsed once and shared: read it, never change it; clone what a reply keeps. */
export function shared(path: MockupPath, vendor: RedfishVendor): Json {
  const key = `${vendor.manufacturer}\n${path}`;
  let json = parsed.get(key);
  if (json === undefined) {
    const text = rawText(path)
      .replaceAll('/Systems/437XR1138R2', `/Systems/${vendor.systemId}`)
      .replaceAll('/Managers/BMC', `/Managers/${vendor.managerId}`)
      .replaceAll('/Chassis/1U', `/Chassis/${vendor.chassisId}`);
    json = JSON.parse(text) as Json;
    parsed.set(key, json);
  }
  return json;
}

/** The mockup resource at `path` with the vendor's ids, as a fresh object the caller may change. */
export function mockup(path: MockupPath, vendor: RedfishVendor): Json {
  return structuredClone(shared(path, vendor));
}

/**
 * `pick(mockup(path, vendor), keys)` without copying what is dropped: the whole resource is not
 * cloned for the few properties a reply keeps (a fresh object the caller may change).
 */
export function mockupPick(path: MockupPath, vendor: RedfishVendor, keys: readonly string[]): Json {
  return structuredClone(pick(shared(path, vendor), keys));
}

const ALWAYS = ['@odata.id', '@odata.type', '@Redfish.Copyright'];

/**
 * Keeps only `keys` of `json` (in the mockup's order) plus @odata.id, @odata.type and the
 * DMTF copyright note, dropping the links the simulator does not serve.
 */
export function pick(json: Json, keys: readonly string[]): Json {
  const out: Json = {};
  for (const k of Object.keys(json)) if (keys.includes(k) || ALWAYS.includes(k)) out[k] = json[k];
  return out;
}

/** A collection from the mockup's collection resource at `path`, with our members. */
export function collection(path: MockupPath, vendor: RedfishVendor, odataId: string, members: readonly string[]): Json {
  const json = mockupPick(path, vendor, ['Name', 'Description']);
  json['@odata.id'] = odataId;
  json['Members@odata.count'] = members.length;
  json.Members = members.map((id) => ({ '@odata.id': id }));
  return json;
}
