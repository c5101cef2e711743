import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EVENT_COMMANDS, MACHINE_COMMANDS, type BmcAction } from '../../src/commands/actions.js';
import { decodeMachineEvent, EVENT_REJECT_REASONS, EventDecodeError, parseBmcAddress, planEvent, type EventRejectReason } from '../../src/commands/event.js';
import { BmcError } from '../../src/errors.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const ipmi = { address: '10.1.0.17:623', mac: 'ac:1f:6b:35:ac:62', user: 'ADMIN', password: 'secret', interface: 'lanplus', fru: { board_part_number: 'X11DPT-B' }, bmcversion: '1.74.11', powerstate: 'ON', last_updated: '2026-11-23T18:00:00Z' };
const M = 'c8e1b5a6-1f2e-4d3c-9b8a-7f6e5d4c3b2a';

function reasonOf(input: unknown): EventRejectReason {
  try {
    decodeMachineEvent(enc(input));
  } catch (err) {
    expect(err).toBeInstanceOf(EventDecodeError);
    expect(err).toBeInstanceOf(BmcError);
    expect((err as EventDecodeError).code).toBe('DECODE');
    return (err as EventDecodeError).reason;
  }
  throw new Error(`decoded: ${JSON.stringify(input)}`);
}

describe('decodeMachineEvent', () => {
  it('decodes the event of metal-interfaces.md §2', () => {
    const event = decodeMachineEvent(enc({ type: 'command', new: M, cmd: { target: M, cmd: 'ON', ipmi } }));
    expect(event).toEqual({ type: 'command', new: M, cmd: { target: M, cmd: 'ON', ipmi: { ...ipmi, host: '10.1.0.17', port: 623 } } });
  });

  it('decodes UPDATE-FIRMWARE with its firmwareupdate', () => {
    const firmwareupdate = { kind: 'bios', url: 'https://s3.example/firmware/bios/supermicro/X11DPT-B/3.3' };
    const event = decodeMachineEvent(enc({ type: 'command', cmd: { target: M, cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate } }));
    expect(event.cmd?.firmwareupdate).toEqual(firmwareupdate);
  });

  it('treats empty and null fields as absent (Go omitempty) and accepts update without ipmi', () => {
    expect(decodeMachineEvent(enc({ type: 'update', new: M, old: '' }))).toEqual({ type: 'update', new: M });
    expect(decodeMachineEvent(enc({ type: 'delete', old: M, cmd: { ipmi: { address: '10.0.0.1', user: null } } })).cmd?.ipmi).toEqual({ address: '10.0.0.1', host: '10.0.0.1', port: 623 });
  });

  it.each<[string, unknown, EventRejectReason]>([
    ['bytes that are not JSON', 'hello', 'not-json'],
    ['truncated JSON', '{"type":"command"', 'not-json'],
    ['an array', [], 'not-object'],
    ['null', null, 'not-object'],
    ['a number', 42, 'not-object'],
    ['no type', { cmd: { cmd: 'ON', ipmi } }, 'unknown-type'],
    ['an unknown type', { type: 'explode', cmd: { cmd: 'ON', ipmi } }, 'unknown-type'],
    ['a type of the wrong case', { type: 'COMMAND', cmd: { cmd: 'ON', ipmi } }, 'unknown-type'],
    ['a command without cmd', { type: 'command', new: M }, 'missing-ipmi'],
    ['a command without cmd.ipmi', { type: 'command', cmd: { target: M, cmd: 'ON' } }, 'missing-ipmi'],
    ['a create without cmd.ipmi', { type: 'create', new: M }, 'missing-ipmi'],
    ['a delete without cmd.ipmi', { type: 'delete', old: M, cmd: {} }, 'missing-ipmi'],
    ['ipmi without address', { type: 'command', cmd: { cmd: 'ON', ipmi: { user: 'ADMIN' } } }, 'missing-address'],
    ['ipmi with an empty address', { type: 'command', cmd: { cmd: 'ON', ipmi: { address: '' } } }, 'missing-address'],
    ['an address with a bad port', { type: 'command', cmd: { cmd: 'ON', ipmi: { address: '10.0.0.1:99999' } } }, 'invalid-address'],
    ['an address without host', { type: 'command', cmd: { cmd: 'ON', ipmi: { address: ':623' } } }, 'invalid-address'],
    ['an unknown command', { type: 'command', cmd: { cmd: 'SELF-DESTRUCT', ipmi } }, 'unknown-command'],
    ['a command without cmd.cmd', { type: 'command', cmd: { ipmi } }, 'unknown-command'],
    ['a command in lower case', { type: 'command', cmd: { cmd: 'on', ipmi } }, 'unknown-command'],
    ['UPDATE-FIRMWARE without firmwareupdate', { type: 'command', cmd: { cmd: 'UPDATE-FIRMWARE', ipmi } }, 'invalid-firmware'],
    ['UPDATE-FIRMWARE with kind nic', { type: 'command', cmd: { cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate: { kind: 'nic', url: 'https://x/y' } } }, 'invalid-firmware'],
    ['UPDATE-FIRMWARE without url', { type: 'command', cmd: { cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate: { kind: 'bmc' } } }, 'invalid-firmware'],
    ['UPDATE-FIRMWARE with a file url', { type: 'command', cmd: { cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate: { kind: 'bmc', url: 'file:///etc/passwd' } } }, 'invalid-firmware'],
    ['a numeric target', { type: 'command', cmd: { target: 7, cmd: 'ON', ipmi } }, 'invalid-field'],
    ['a numeric password', { type: 'command', cmd: { cmd: 'ON', ipmi: { ...ipmi, password: 1234 } } }, 'invalid-field'],
    ['cmd as a string', { type: 'command', cmd: 'ON' }, 'invalid-field'],
    ['a target of 300 characters', { type: 'command', cmd: { target: 'a.'.repeat(150), cmd: 'ON', ipmi } }, 'too-large'],
    ['an address of 300 characters', { type: 'command', cmd: { cmd: 'ON', ipmi: { address: 'a'.repeat(300) } } }, 'too-large'],
    ['a firmware url of 5000 characters', { type: 'command', cmd: { cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate: { kind: 'bmc', url: `https://x/${'y'.repeat(5000)}` } } }, 'too-large'],
    ['an event of 100 KB', { type: 'command', cmd: { cmd: 'ON', ipmi }, padding: 'x'.repeat(100_000) }, 'too-large'],
  ])('refuses %s', (_name, input, reason) => {
    expect(reasonOf(input)).toBe(reason);
  });

  it('quotes at most 64 characters of a value in its errors, and only strings', () => {
    expect(() => decodeMachineEvent(enc({ type: 'x'.repeat(200) }))).toThrow(/: unknown type "x{64}…" \(expected/);
    expect(() => decodeMachineEvent(enc({ type: [[[]]] }))).toThrow(/: unknown type a list \(expected/);
  });

  it('refuses bytes that are not UTF-8 as not-json', () => {
    expect(() => decodeMachineEvent(new Uint8Array([0x22, 0xff, 0x22]))).toThrow(EventDecodeError);
  });

  it('never puts the password into an error message', () => {
    try {
      decodeMachineEvent(enc({ type: 'command', cmd: { cmd: 'NOPE', ipmi: { ...ipmi, password: 'hunter2-secret' } } }));
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('gives a value or an EventDecodeError for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeMachineEvent(bytes);
        } catch (err) {
          return err instanceof EventDecodeError && EVENT_REJECT_REASONS.includes(err.reason);
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it('gives a value or an EventDecodeError for arbitrary JSON shaped like an event', () => {
    const field = fc.oneof(fc.constant(undefined), fc.constant(null), fc.string(), fc.integer(), fc.boolean(), fc.object());
    const event = fc.record(
      {
        type: fc.oneof(fc.constantFrom('create', 'update', 'delete', 'command'), field),
        old: field,
        new: field,
        cmd: fc.oneof(
          field,
          fc.record(
            {
              target: field,
              cmd: fc.oneof(fc.constantFrom(...EVENT_COMMANDS), field),
              ipmi: fc.oneof(field, fc.record({ address: fc.oneof(fc.constantFrom('10.0.0.1:623', '[fe80::1]:623', 'bmc', 'a:b:c'), field), user: field, password: field, fru: field }, { requiredKeys: [] })),
              firmwareupdate: fc.oneof(field, fc.record({ kind: fc.oneof(fc.constantFrom('bios', 'bmc'), field), url: fc.oneof(fc.constantFrom('https://x/fw', 'ftp://x', 'not a url'), field) }, { requiredKeys: [] })),
            },
            { requiredKeys: [] },
          ),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(event, (e) => {
        try {
          const decoded = decodeMachineEvent(enc(e));
          planEvent(decoded);
        } catch (err) {
          return err instanceof EventDecodeError;
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  });
});

describe('parseBmcAddress', () => {
  it.each([
    ['10.1.0.17:623', '10.1.0.17', 623],
    ['10.1.0.17', '10.1.0.17', 623],
    ['bmc-1.example:6230', 'bmc-1.example', 6230],
    ['[fe80::1]:623', 'fe80::1', 623],
    ['[fe80::1]', 'fe80::1', 623],
  ])('%s', (address, host, port) => {
    expect(parseBmcAddress(address)).toEqual({ host, port });
  });

  it.each(['fe80::1', '10.0.0.1:', '10.0.0.1:0', '10.0.0.1:abc', 'user@host:623'])('refuses %s', (address) => {
    expect(() => parseBmcAddress(address)).toThrow(EventDecodeError);
  });
});

describe('planEvent', () => {
  const cmd = (c: string) => ({ kind: 'command', command: c }) as BmcAction;
  const base = { cmd: { ipmi } };

  it.each<[string, object, string, BmcAction[]]>([
    ['create boots from disk', { type: 'create', new: M, ...base }, 'create', [cmd('DISK')]],
    ['delete boots from PXE, then resets', { type: 'delete', old: M, ...base }, 'delete', [cmd('PXE'), cmd('RESET')]],
    ['update does nothing', { type: 'update', new: M }, 'update', []],
    ...MACHINE_COMMANDS.filter((c) => c !== 'REINSTALL').map((c): [string, object, string, BmcAction[]] => [`command ${c}`, { type: 'command', cmd: { target: M, cmd: c, ipmi } }, c, [cmd(c)]]),
    ['command REINSTALL boots from PXE, then cycles (two steps: only the cycle may have happened after a failure)', { type: 'command', cmd: { target: M, cmd: 'REINSTALL', ipmi } }, 'REINSTALL', [cmd('PXE'), cmd('CYCLE')]],
    ['UPDATE-FIRMWARE updates the firmware', { type: 'command', cmd: { target: M, cmd: 'UPDATE-FIRMWARE', ipmi, firmwareupdate: { kind: 'bmc', url: 'https://fw/bmc' } } }, 'UPDATE-FIRMWARE', [{ kind: 'firmware', firmware: 'bmc', url: 'https://fw/bmc' }]],
  ])('%s', (_name, event, command, actions) => {
    const plan = planEvent(decodeMachineEvent(enc(event)));
    expect(plan.command).toBe(command);
    expect(plan.actions).toEqual(actions);
    expect(plan.machineId).toBe(M);
  });

  it('takes the machine id from cmd.target, then new, then old; the key falls back to the BMC address', () => {
    const id = (e: object) => planEvent(decodeMachineEvent(enc(e)));
    expect(id({ type: 'delete', old: 'o', new: 'n', cmd: { target: 't', ipmi } }).machineId).toBe('t');
    expect(id({ type: 'delete', old: 'o', new: 'n', cmd: { ipmi } }).machineId).toBe('n');
    expect(id({ type: 'delete', old: 'o', cmd: { ipmi } }).machineId).toBe('o');
    const anonymous = id({ type: 'command', cmd: { cmd: 'ON', ipmi } });
    expect(anonymous.machineId).toBe('');
    expect(anonymous.key).toBe('bmc:10.1.0.17:623');
  });
});
