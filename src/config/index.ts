export { loadConfig, type Config, type LeaseFormat, type LogLevel, type Protocol } from './config.js';
export { ConfigError } from './error.js';
export { GUID_ORDERS, VENDOR_NAMES, type GuidOrder, type GuidOrdersByVendor, type VendorName } from './guid-orders.js';
export { parseGoDuration, parseGoDurationNs, formatDuration } from './duration.js';
export { redactConfig, REDACTED } from './redact.js';
export { parseMqAddress, redactMqAddress, type MqAddress } from './mq.js';
export { VARIABLES, type VariableDoc } from './variables.js';
