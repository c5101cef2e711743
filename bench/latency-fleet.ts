/**
 * `report-latency`'s fleet as the issue states it, shared with the model of its cycles
 * (bench/cycle-model.ts): the simulator's latency model and the per-BMC deadline.
 */
export const LATENCY = 'redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms slow=3%:2s-5s dead=2%';
/** the per-BMC deadline here (the daemon's default is 20 s): see bench/report-latency.ts */
export const BMC_TIMEOUT_MS = 4000;
