/**
 * How the simulated Redfish services of the vendors differ, as one table. The
 * differences are the ones a client has to cope with on real fleets: resource ids other
 * than "1", a System UUID in upper case, the identify LED as IndicatorLED or as
 * LocationIndicatorActive only, power readings in the deprecated `Power` resource or only
 * in `PowerSubsystem` + `EnvironmentMetrics`, the reset types inline or in an ActionInfo,
 * PowerCycle missing, If-Match required on PATCH.
 */

export type ResetType = 'On' | 'ForceOn' | 'ForceOff' | 'GracefulShutdown' | 'GracefulRestart' | 'ForceRestart' | 'PowerCycle' | 'Nmi';

export interface RedfishVendor {
  /** matches SimMachineState.manufacturer */
  manufacturer: string;
  systemId: string;
  managerId: string;
  chassisId: string;
  /** System UUID in upper case (the rest print it in lower case) */
  uuidUpperCase: boolean;
  /** `IndicatorLED` (Lit/Off) on System and Chassis */
  indicatorLED: boolean;
  /** `LocationIndicatorActive` (boolean) on System and Chassis */
  locationIndicatorActive: boolean;
  /** the deprecated Chassis `Power` resource with PowerControl and PowerSupplies */
  power: boolean;
  /** Chassis `EnvironmentMetrics` with PowerWatts.Reading */
  environmentMetrics: boolean;
  resetTypes: readonly ResetType[];
  /** ResetType allowable values in `@Redfish.ActionInfo` instead of inline */
  resetActionInfo: boolean;
  /** PATCH without If-Match is answered 428 */
  ifMatchRequired: boolean;
  /** PowerMetrics.IntervalInMin */
  powerIntervalMin: number;
  /** MultipartHttpPushUri of the UpdateService */
  multipartPushUri: string;
  /**
   * `#UpdateService.StartUpdate` in the UpdateService: a push with apply time OnStartUpdateRequest
   * runs a verify task that stages the image, and the action applies it (Supermicro X12 and later)
   */
  startUpdate: boolean;
  /** ProtocolFeaturesSupported.ExpandQuery in the service root, and `$expand` on the Systems, Managers and Chassis collections */
  expandQuery: boolean;
}

export const REDFISH_VENDORS: readonly RedfishVendor[] = [
  {
    manufacturer: 'Supermicro',
    systemId: '1',
    managerId: '1',
    chassisId: '1',
    uuidUpperCase: true,
    indicatorLED: true,
    locationIndicatorActive: false,
    power: true,
    environmentMetrics: false,
    resetTypes: ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn', 'PowerCycle'],
    resetActionInfo: false,
    ifMatchRequired: false,
    powerIntervalMin: 1,
    multipartPushUri: '/redfish/v1/UpdateService/upload',
    startUpdate: true,
    expandQuery: true,
  },
  {
    manufacturer: 'Lenovo',
    systemId: '1',
    managerId: '1',
    chassisId: '1',
    uuidUpperCase: false,
    indicatorLED: false,
    locationIndicatorActive: true,
    power: true,
    environmentMetrics: true,
    resetTypes: ['On', 'Nmi', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'ForceOff', 'PowerCycle'],
    resetActionInfo: true,
    ifMatchRequired: true,
    powerIntervalMin: 60,
    multipartPushUri: '/mfwupdate',
    startUpdate: false,
    expandQuery: true,
  },
  {
    manufacturer: 'Gigabyte',
    systemId: 'Self',
    managerId: 'Self',
    chassisId: 'Self',
    uuidUpperCase: false,
    indicatorLED: true,
    locationIndicatorActive: false,
    power: false,
    environmentMetrics: true,
    resetTypes: ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart'],
    resetActionInfo: false,
    ifMatchRequired: false,
    powerIntervalMin: 1,
    multipartPushUri: '/redfish/v1/UpdateService/upload',
    startUpdate: false,
    expandQuery: false,
  },
  {
    manufacturer: 'Dell Inc.',
    systemId: 'System.Embedded.1',
    managerId: 'iDRAC.Embedded.1',
    chassisId: 'System.Embedded.1',
    uuidUpperCase: false,
    indicatorLED: true,
    locationIndicatorActive: true,
    power: true,
    environmentMetrics: false,
    resetTypes: ['On', 'ForceOff', 'ForceRestart', 'GracefulRestart', 'GracefulShutdown', 'Nmi', 'PowerCycle'],
    resetActionInfo: false,
    ifMatchRequired: false,
    powerIntervalMin: 1,
    multipartPushUri: '/redfish/v1/UpdateService/MultipartUpload',
    startUpdate: false,
    expandQuery: true,
  },
];

/** The vendor profile of a machine; unknown manufacturers get the first (Supermicro-like) one. */
export function vendorOf(manufacturer: string): RedfishVendor {
  return REDFISH_VENDORS.find((v) => v.manufacturer === manufacturer) ?? (REDFISH_VENDORS[0] as RedfishVendor);
}
