/**
 * What a 2xx answer to a PATCH says it left unapplied (DSP0266's partial PATCH): read from the
 * answer's messages, an error object in it, the group's and each property's annotations; other
 * messages (Success, a refusal of a property not sent) change nothing; bounded whatever the BMC sends.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkApplied, NotAppliedError, unappliedProperties } from '../../src/redfish/patch-answer.js';

const SENT = ['BootSourceOverrideEnabled', 'BootSourceOverrideTarget', 'BootSourceOverrideMode'];
const info = (o: Record<string, unknown>) => ({ '@odata.type': '#Message.v1_1_1.Message', MessageSeverity: 'Warning', ...o });
const asIs = (text: string): string => text;
const names = (body: unknown) => unappliedProperties(body, 'Boot', SENT, asIs).map((u) => u.property);

describe('unappliedProperties', () => {
  it('finds a property named by RelatedProperties, MessageArgs or the text of a message that leaves it unapplied', () => {
    expect(names({ '@Message.ExtendedInfo': [info({ MessageId: 'Base.1.8.PropertyValueNotInList', RelatedProperties: ['#/Boot/BootSourceOverrideEnabled'] })] })).toEqual(['Boot/BootSourceOverrideEnabled']);
    expect(names({ '@Message.ExtendedInfo': [info({ MessageId: 'Base.1.4.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] })] })).toEqual(['Boot/BootSourceOverrideMode']);
    expect(names({ error: { '@Message.ExtendedInfo': [info({ MessageId: 'Base.1.11.PropertyUnknown', Message: 'The property BootSourceOverrideTarget is not in the list of valid properties.' })] } })).toEqual(['Boot/BootSourceOverrideTarget']);
    expect(names({ 'Boot@Message.ExtendedInfo': [info({ MessageId: 'Base.1.8.PropertyValueModified', MessageArgs: ['BootSourceOverrideEnabled', 'Once'] })] })).toEqual(['Boot/BootSourceOverrideEnabled']);
  });

  it('takes a property\'s own annotation (bmcweb) whatever its arguments say', () => {
    const body = { Boot: { BootSourceOverrideTarget: 'Pxe', 'BootSourceOverrideEnabled@Message.ExtendedInfo': [info({ MessageId: 'Base.1.8.1.PropertyNotWritable' })] } };
    expect(names(body)).toEqual(['Boot/BootSourceOverrideEnabled']);
  });

  it('nothing for a Success, a message about a property not sent, or an answer without messages', () => {
    expect(names({ '@Message.ExtendedInfo': [info({ MessageId: 'Base.1.19.Success', MessageSeverity: 'OK' })] })).toEqual([]);
    expect(names({ '@Message.ExtendedInfo': [info({ MessageId: 'Base.1.8.PropertyNotWritable', RelatedProperties: ['#/AssetTag'], MessageArgs: ['AssetTag'] })] })).toEqual([]);
    expect(names({ '@Message.ExtendedInfo': [info({ MessageId: 'iLO.2.14.SystemResetRequired', Message: 'BootSourceOverrideTarget applies at the next reset.' })] })).toEqual([]);
    expect(names(undefined)).toEqual([]);
    expect(names({ Boot: { BootSourceOverrideEnabled: 'Continuous' } })).toEqual([]);
  });

  it('takes any JSON without throwing, and reads at most the first 16 messages of each list', () => {
    fc.assert(fc.property(fc.jsonValue(), (body) => void unappliedProperties(body, 'Boot', SENT, asIs)));
    const flood = Array.from({ length: 100_000 }, () => info({ MessageId: 'Base.1.19.Success' }));
    expect(names({ '@Message.ExtendedInfo': [...flood, info({ MessageId: 'Base.1.8.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] })] })).toEqual([]);
  });
});

describe('checkApplied', () => {
  it('a partial answer is NotAppliedError: code HTTP, the 2xx status, the properties and the message in its text', () => {
    const body = { Boot: { 'BootSourceOverrideEnabled@Message.ExtendedInfo': [info({ MessageId: 'Base.1.8.PropertyValueNotInList', Message: 'The value "Continuous" for the property BootSourceOverrideEnabled is not in the list of acceptable values.' })] } };
    let err: unknown;
    try {
      checkApplied('/redfish/v1/Systems/1', { status: 200, body }, 'Boot', SENT, asIs);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NotAppliedError);
    expect(err).toMatchObject({ code: 'HTTP', httpStatus: 200, properties: ['Boot/BootSourceOverrideEnabled'] });
    expect((err as Error).message).toBe('PATCH /redfish/v1/Systems/1: HTTP 200, but the BMC did not apply Boot/BootSourceOverrideEnabled (Base.1.8.PropertyValueNotInList: The value "Continuous" for the property BootSourceOverrideEnabled is not in the list of acceptable values.)');
    expect(() => checkApplied('/redfish/v1/Systems/1', { status: 204, body: undefined }, 'Boot', SENT, asIs)).not.toThrow();
  });
});
