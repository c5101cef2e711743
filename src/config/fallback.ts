/**
 * The Go metal-bmc's unprefixed fallbacks: for the variables in UNPREFIXED_FALLBACKS, a blank or
 * unset METAL_BMC_ name takes the value of its bare name (`MQ_ADDRESS` for
 * `METAL_BMC_MQ_ADDRESS`). The prefixed name wins when both are set; differing values get a
 * warning that names both variables and shows neither value.
 */
import type { Env } from './env.js';

export interface EffectiveEnv {
  /** the environment with fallbacks copied under their METAL_BMC_ names */
  env: Env;
  /** METAL_BMC_ name → the bare name its value was taken from */
  fromFallback: Map<string, string>;
  warnings: string[];
}

const isSet = (v: string | undefined): v is string => v !== undefined && v.trim() !== '';

export function applyFallbacks(env: Env, fallbacks: Readonly<Record<string, string>>): EffectiveEnv {
  const effective: Env = { ...env };
  const fromFallback = new Map<string, string>();
  const warnings: string[] = [];
  for (const [prefixed, bare] of Object.entries(fallbacks)) {
    const own = env[prefixed];
    const other = env[bare];
    if (!isSet(other)) continue;
    if (isSet(own)) {
      if (own.trim() !== other.trim()) warnings.push(`${prefixed} and ${bare} are both set and differ; ${prefixed} is used`);
      continue;
    }
    effective[prefixed] = other;
    fromFallback.set(prefixed, bare);
  }
  return { env: effective, fromFallback, warnings };
}
