/**
 * The layer rules of eslint.config.js (docs/architecture.md, "Layers") refuse an upward import,
 * static or dynamic, and the tree as it is passes them. Runs eslint's Node API on the real
 * configuration; the snippets are linted as if they were files at the given paths.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const LAYER_RULES = new Set(['no-restricted-imports', 'no-restricted-syntax']);
const eslint = new ESLint({ overrideConfigFile: 'eslint.config.js', ruleFilter: ({ ruleId }) => LAYER_RULES.has(ruleId) });

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport {};\n`, { filePath });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

const REFUSED: Array<[file: string, code: string]> = [
  // the case: a codec importing metal-api's names from the facade
  ['src/ipmi/fru.ts', "import type { MetalFru } from '../outband/types.js';"],
  ['src/ipmi/x.ts', "import type { Outband } from '../outband/types.js';"],
  ['src/redfish/x.ts', "export { createHub } from '../console/hub.js';"],
  ['src/redfish/x.ts', "await import('../report/cycle.js');"],
  ['src/leases/x.ts', "import { startDaemon } from '../daemon.js';"],
  ['src/metalapi/standin.ts', "import type { Credentials } from '../outband/types.js';"],
  ['src/config/x.ts', "import '../commands/runner.js';"],
  ['src/net/x.ts', "import type { Config } from '../config/config.js';"],
  ['src/ipmi/x.ts', "import '../redfish/http.js';"],
  ['src/sim/x.ts', "import '../parts/console.js';"],
  ['src/sim/x.ts', "import '../bus/connection.js';"],
  ['src/sim/redfish/x.ts', "import { startDaemon } from '../../daemon.js';"],
  ['src/sim/x.ts', "import { openSession } from '../ipmi/session.js';"],
  ['src/outband/x.ts', "import '../report/cycle.js';"],
  ['src/report/x.ts', "import '../commands/runner.js';"],
  ['src/console/x.ts', "import '../bus/connection.js';"],
  ['src/commands/x.ts', "import '../parts/commands.js';"],
  ['src/ipmi/rmcp.ts', "import type { IpmiSession } from './session.js';"],
  ['src/ipmi/lan.ts', "import { createSocket } from 'node:dgram';"],
  ['src/errors.ts', "import type { Config } from './config/config.js';"],
  ['src/daemon.ts', "import './console/hub.js';"],
];

const ALLOWED: Array<[file: string, code: string]> = [
  ['src/ipmi/x.ts', "import { BmcError } from '../errors.js'; import { deadline } from '../deadline.js'; import './session.js';"],
  ['src/outband/x.ts', "import '../ipmi/session.js'; import '../redfish/http.js'; import '../metalapi/types.js'; await import('./redfish-side.js');"],
  ['src/report/x.ts', "import '../outband/types.js'; import '../leases/types.js'; import '../metalapi/client.js';"],
  ['src/sim/redfish/x.ts', "import '../machine.js'; import '../../errors.js'; import '../../ipmi/rmcp.js';"],
  ['src/parts/x.ts', "import '../bus/connection.js'; import '../commands/runner.js'; import '../daemon.js';"],
  ['src/cli/x.ts', "import '../parts/console.js'; import '../sim/fleet.js'; await import('./serve.js');"],
];

describe('layer rules (eslint.config.js)', () => {
  it.each(REFUSED)('refuse an upward import in %s: %s', async (file, code) => {
    const errors = await layerErrors(file, code);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(/docs\/architecture\.md, "Layers"/);
  });

  it.each(ALLOWED)('let %s import its own layer and the ones below: %s', async (file, code) => {
    expect(await layerErrors(file, code)).toEqual([]);
  });

  it('pass on the tree as it is', async () => {
    const results = await eslint.lintFiles(['src']);
    expect(results.length).toBeGreaterThan(100);
    const problems = results.flatMap((r) => r.messages.map((m) => `${r.filePath}:${m.line} ${m.ruleId}: ${m.message}`));
    expect(problems).toEqual([]);
  }, 120_000);
});
