export { loadConfig, type Config, type LeaseFormat, type LogLevel, type Protocol } from './config.js';
export { ConfigError } from './error.js';
export { parseGoDuration, parseGoDurationNs, formatDuration } from './duration.js';
export { redactConfig, REDACTED } from './redact.js';
export { parseMqAddress, redactMqAddress, type MqAddress } from './mq.js';
export { VARIABLES, type VariableDoc } from './variables.js';
