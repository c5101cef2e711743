/**
 * What reaches an operator's terminal from a BMC: the CLI's report table, firmware progress and
 * error lines, an SSH console's notices. Nothing in them may act in the terminal.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeError } from '../../src/cli/args.js';
import { formatReport } from '../../src/cli/bmc.js';
import { BmcError } from '../../src/errors.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { terminalSafe } from '../../src/terminal-text.js';

// eslint-disable-next-line no-control-regex -- control characters are what is looked for
const ACTS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('terminalSafe', () => {
  it('leaves no character that acts in a terminal, and changes nothing else (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const out = terminalSafe(text);
        expect(out).not.toMatch(ACTS);
        // what shows stays, in order
        expect(out.replace(/ /g, '')).toBe(text.replace(new RegExp(ACTS.source, 'g'), '').replace(/ /g, ''));
      }),
    );
  });
});

describe('the CLI with a BMC whose text carries terminal controls', () => {
  const hostile = 'SN\u001b]52;c;ZXZpbA==\u0007\u001b[2J\u009b31m\u202eevil';
  const report: BmcReport = { uuid: 'u1', bmcVersion: `1.0${hostile}`, biosVersion: '2.0', fru: { boardSerial: hostile }, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] } as unknown as BmcReport;
  const bmc = { address: '10.0.0.1', vendor: 'Dell' } as unknown as Outband;

  it('prints the report table without them', () => {
    const table = formatReport(bmc, report);
    // eslint-disable-next-line no-control-regex -- the table's own newlines aside
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(table).toContain('SN ]52;c;ZXZpbA== [2J 31m evil');
  });

  it('prints an error that quotes the BMC without them', () => {
    const line = describeError(new BmcError('HTTP', `Redfish PATCH refused: ${hostile}`));
    expect(line).not.toMatch(ACTS);
    expect(line).toContain('[HTTP]');
  });
});
