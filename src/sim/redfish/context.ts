/** What a request handler of the simulated Redfish service sees. */
import type { IncomingMessage } from 'node:http';
import type { SimMachine } from '../machine.js';
import type { QuirkState } from './quirks.js';
import type { SessionStore, SimSession } from './sessions.js';
import type { SimTask, TaskStore } from './tasks.js';
import type { RedfishVendor } from './vendors.js';

export interface ServerSettings {
  user: string;
  password: string;
  sessionTimeoutS: number;
}

/** One simulated BMC: its machine, vendor profile, sessions and tasks. */
export interface MachineContext {
  /** position in the server's `machines` */
  index: number;
  machine: SimMachine;
  vendor: RedfishVendor;
  sessions: SessionStore;
  tasks: TaskStore;
  /** what the Redfish quirks remember between requests */
  quirkState: QuirkState;
  /** an image pushed with apply time OnStartUpdateRequest, for `#UpdateService.StartUpdate` once its verify task has completed */
  staged?: { target: 'bios' | 'bmc'; image: string; verifyTask: SimTask };
  /** redfish-hpe-update-state: the flash iLO runs without a task, told in UpdateService Oem.Hpe.State */
  hpeFlash?: SimTask;
}

export interface RequestCounters {
  total: number;
  /** by position in `machines` */
  perMachine: number[];
  /** by route name, e.g. "GET system"; unmatched paths count as "unknown" */
  byRoute: Record<string, number>;
  /** file bytes received by multipart pushes */
  uploadedBytes: number;
  /** the UpdateParameters of the last multipart push, by position in `machines` */
  updateParameters: Record<number, Record<string, unknown>>;
}

export interface Rq {
  ctx: MachineContext;
  settings: ServerSettings;
  counters: RequestCounters;
  req: IncomingMessage;
  method: string;
  path: string;
  /** `{id}` of the route pattern */
  id: string;
  /** the session that authenticated the request, if it came with X-Auth-Token */
  session: SimSession | undefined;
}

export interface VendorPaths {
  system: string;
  manager: string;
  chassis: string;
}

export function paths(vendor: RedfishVendor): VendorPaths {
  return {
    system: `/redfish/v1/Systems/${vendor.systemId}`,
    manager: `/redfish/v1/Managers/${vendor.managerId}`,
    chassis: `/redfish/v1/Chassis/${vendor.chassisId}`,
  };
}

export const link = (id: string): { '@odata.id': string } => ({ '@odata.id': id });
