/** metal-api access for the daemon. The stand-in (standin.ts) is imported directly by the lab and tests. */
export { createMetalApiClient, type AttemptEnd, type CallOptions, type MetalApiClient, type MetalApiClientOptions } from './client.js';
export { createMetalApiWatch, type MetalApiWatch } from './metrics.js';
export { signHeaders, verifyHeaders, randomSalt, formatXDate, AUTH_TYPE, type VerifyResult } from './hmac.js';
export { FRU_KEYS, toMetalFru } from './types.js';
export type { HttpErrorResponse, MetalFru, PowerMetric, PowerSupply, MachineIpmi, MachineIpmiReport, MachineIpmiReportResponse, MachineIpmiReports, MachineIpmiResponse } from './types.js';
