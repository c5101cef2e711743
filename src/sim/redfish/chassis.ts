/**
 * GET bodies of the Chassis and its power resources: the deprecated `Power` (PowerControl
 * with PowerMetrics, PowerSupplies) where the vendor has it, the newer `PowerSubsystem`
 * with one PowerSupply resource per supply, and `EnvironmentMetrics` (PowerWatts).
 * Readings come from SimMachineState.powerWatts and .powerSupplies, as the IPMI view's do.
 */
import type { SimMachineState, SimPowerSupply } from '../machine.js';
import { link, paths, type MachineContext } from './context.js';
import { etagOf } from './http.js';
import { collection, mockupPick, pick, shared, type Json } from './mockup.js';

export function chassis(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const { vendor } = ctx;
  const p = paths(vendor);
  const keys = ['Id', 'Name', 'ChassisType', 'Manufacturer', 'Model', 'SerialNumber', 'PartNumber', 'PowerState', 'IndicatorLED', 'Status'];
  const more = ['PowerSubsystem', 'EnvironmentMetrics', 'Power@Redfish.Deprecated', 'Power'];
  const json = mockupPick('Chassis/1U', vendor, [...keys, ...more]);
  Object.assign(json, {
    Id: vendor.chassisId,
    Name: `${state.model} chassis`,
    Manufacturer: state.manufacturer,
    Model: state.model,
    SerialNumber: state.fru.chassisSerial,
    PartNumber: state.fru.chassisPartNumber,
    PowerState: state.power === 'on' ? 'On' : 'Off',
  });
  if (vendor.indicatorLED) json.IndicatorLED = state.identify ? 'Lit' : 'Off';
  else delete json.IndicatorLED;
  if (vendor.locationIndicatorActive) json.LocationIndicatorActive = state.identify;
  if (!vendor.power) {
    delete json.Power;
    delete json['Power@Redfish.Deprecated'];
  }
  if (!vendor.environmentMetrics) delete json.EnvironmentMetrics;
  json.Links = { ComputerSystems: [link(p.system)], ManagedBy: [link(p.manager)], ManagersInChassis: [link(p.manager)] };
  json['@odata.etag'] = etagOf(json);
  return json;
}

function capacity(state: SimMachineState): number {
  return state.powerSupplies.reduce((sum, psu) => sum + psu.watts, 0);
}

/** Output of one supply: the average consumption shared by the enabled supplies. */
function outputWatts(state: SimMachineState, psu: SimPowerSupply): number {
  const enabled = state.powerSupplies.filter((s) => s.state === 'Enabled').length;
  return psu.state === 'Enabled' && enabled > 0 ? Math.round(state.powerWatts.average / enabled) : 0;
}

export function power(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const p = paths(ctx.vendor);
  const template = shared('Chassis/1U/Power', ctx.vendor);
  const json = pick(template, ['Id', 'Name', 'PowerControl', 'PowerSupplies']);
  const control = (template.PowerControl as Json[])[0] as Json;
  const { average, min, max } = state.powerWatts;
  json.PowerControl = [
    {
      ...pick(control, ['MemberId', 'Name', 'Status']),
      '@odata.id': `${p.chassis}/Power#/PowerControl/0`,
      PowerConsumedWatts: average,
      PowerCapacityWatts: capacity(state),
      PowerMetrics: { IntervalInMin: ctx.vendor.powerIntervalMin, MinConsumedWatts: min, MaxConsumedWatts: max, AverageConsumedWatts: average },
      RelatedItem: [link(p.system), link(p.chassis)],
    },
  ];
  const supplyTemplate = (template.PowerSupplies as Json[])[0] as Json;
  json.PowerSupplies = state.powerSupplies.map((psu, i) => ({
    ...pick(supplyTemplate, ['PowerSupplyType', 'LineInputVoltageType', 'LineInputVoltage', 'FirmwareVersion']),
    '@odata.id': `${p.chassis}/Power#/PowerSupplies/${i}`,
    MemberId: String(i),
    Name: psu.name,
    Status: { State: psu.state, Health: psu.health },
    PowerCapacityWatts: psu.watts,
    LastPowerOutputWatts: outputWatts(state, psu),
    Manufacturer: state.manufacturer,
    SerialNumber: `${state.fru.chassisSerial}P${i + 1}`,
    RelatedItem: [link(p.chassis)],
  }));
  // the picks above still point into the shared template: the reply gets its own copy
  return structuredClone(json);
}

function worst(healths: readonly string[]): string {
  return healths.includes('Critical') ? 'Critical' : healths.includes('Warning') ? 'Warning' : 'OK';
}

const supplyId = (i: number): string => `Bay${i + 1}`;

export function powerSubsystem(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const json = mockupPick('Chassis/1U/PowerSubsystem', ctx.vendor, ['Id', 'Name', 'CapacityWatts', 'PowerSupplies', 'Status']);
  json.CapacityWatts = capacity(state);
  json.Status = { State: 'Enabled', Health: 'OK', HealthRollup: worst(state.powerSupplies.map((s) => s.health)) };
  return json;
}

export function powerSupplies(ctx: MachineContext): Json {
  const base = `${paths(ctx.vendor).chassis}/PowerSubsystem/PowerSupplies`;
  const members = ctx.machine.state.powerSupplies.map((_, i) => `${base}/${supplyId(i)}`);
  return collection('Chassis/1U/PowerSubsystem/PowerSupplies', ctx.vendor, base, members);
}

/** The supply with id `BayN`, or undefined. */
export function powerSupply(ctx: MachineContext, id: string): Json | undefined {
  const { state } = ctx.machine;
  const i = state.powerSupplies.findIndex((_, n) => supplyId(n) === id);
  const psu = state.powerSupplies[i];
  if (psu === undefined) return undefined;
  const keys = ['Id', 'Name', 'Status', 'LineInputStatus', 'FirmwareVersion', 'HotPluggable', 'PowerCapacityWatts', 'Location', 'Manufacturer', 'SerialNumber'];
  const json = mockupPick('Chassis/1U/PowerSubsystem/PowerSupplies/Bay1', ctx.vendor, keys);
  return {
    ...json,
    Id: id,
    Name: psu.name,
    Status: { State: psu.state, Health: psu.health },
    LineInputStatus: psu.state === 'Enabled' ? 'Normal' : 'LossOfInput',
    PowerCapacityWatts: psu.watts,
    Manufacturer: state.manufacturer,
    SerialNumber: `${state.fru.chassisSerial}P${i + 1}`,
    Location: { PartLocation: { ServiceLabel: psu.name, LocationType: 'Bay', LocationOrdinalValue: i } },
    '@odata.id': `${paths(ctx.vendor).chassis}/PowerSubsystem/PowerSupplies/${id}`,
  };
}

export function environmentMetrics(ctx: MachineContext): Json {
  const json = mockupPick('Chassis/1U/EnvironmentMetrics', ctx.vendor, ['Name']);
  return { ...json, Id: 'EnvironmentMetrics', PowerWatts: { Reading: ctx.machine.state.powerWatts.average } };
}
