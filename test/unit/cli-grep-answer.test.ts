import { describe, expect, it } from 'vitest';
import { grepAnswerReader } from '../../src/cli/console-history.js';
import type { GrepMatch } from '../../src/console/capture-read.js';

describe("the CLI's reader of a remote grep answer", () => {
  it('takes a character split between two chunks whole, and a line split between chunks once', () => {
    const matches: GrepMatch[] = [];
    const read = grepAnswerReader((m) => matches.push(m), () => undefined);
    const answer = Buffer.from(`${JSON.stringify({ machineId: 'm1', t: 1, line: 'Fehler: Lüfter ausgefallen' })}\n`);
    const split = answer.indexOf(Buffer.from('ü')) + 1; // inside the two bytes of ü
    read(answer.subarray(0, split));
    expect(matches).toEqual([]);
    read(answer.subarray(split));
    expect(matches.map((m) => m.line)).toEqual(['Fehler: Lüfter ausgefallen']);
  });

  it('a line that is not JSON (a proxy, another version) is a clear error, not a crash in a stream handler', () => {
    const read = grepAnswerReader(() => undefined, () => undefined);
    expect(() => read(Buffer.from('<html>502 Bad Gateway</html>\n'))).toThrow(/the grep answer has a line that is not a JSON object: "<html>502 Bad Gateway<\/html>"/);
    expect(() => read(Buffer.from('null\n'))).toThrow(/not a JSON object: "null"/);
  });

  it('takes a last line without its newline when the answer ends', () => {
    const matches: GrepMatch[] = [];
    const read = grepAnswerReader((m) => matches.push(m), () => undefined);
    read(Buffer.from(JSON.stringify({ machineId: 'm1', t: 1, line: 'last' })));
    expect(matches).toEqual([]);
    read.end();
    expect(matches.map((m) => m.line)).toEqual(['last']);
  });

  it('tells the closing truncation apart from the matches', () => {
    const why: string[] = [];
    const read = grepAnswerReader(() => undefined, (w) => why.push(w));
    read(Buffer.from('{"truncated":"10000 lines"}\n'));
    expect(why).toEqual(['10000 lines']);
  });
});
