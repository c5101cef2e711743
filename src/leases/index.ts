/** Lease discovery: ISC and Kea parsers (pure), active-lease selection, file watching. */
export { parseIscLeases } from './isc.js';
export { parseKeaLeases } from './kea.js';
export { normalizeMac, normalizeMacSet } from './mac.js';
export { formatIscDate, renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from './render.js';
export { activeLeases, detectLeaseFormat, parseLeases, type ActiveLeaseOptions, type LeaseFormatOption } from './select.js';
export {
  KEA_INFINITE_LIFETIME,
  KEA_STATE,
  LeaseParseError,
  type IscLease,
  type KeaLease,
  type Lease,
  type LeaseFormat,
  type ParsedLeases,
} from './types.js';
export {
  diffLeases,
  readLeasesOnce,
  watchLeases,
  type LeaseDiff,
  type LeaseView,
  type LeaseWatcher,
  type ReadLeasesOptions,
  type WatchLeasesOptions,
} from './watch.js';
