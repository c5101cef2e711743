import { BmcError } from '../errors.js';

/**
 * Invalid configuration. The message is one line, names the variable first
 * (`METAL_BMC_REPORT_INTERVAL: "5x" is not a duration ...`) and never holds a secret value.
 */
export class ConfigError extends BmcError {
  /** the environment variable at fault, when there is one */
  readonly variable: string | undefined;

  constructor(message: string, variable?: string, options: { cause?: unknown } = {}) {
    super('CONFIG', variable === undefined ? message : `${variable}: ${message}`, options);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}
