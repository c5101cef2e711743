/**
 * What of a BMC's messages reaches an error, a job's progress or its result: bounded whatever the
 * BMC sends (a 2 MiB error body of a hundred thousand messages, a task of megabytes), since errors
 * and task messages are logged, published on NATS and kept in the firmware state file.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extendedInfoOf, httpError, messagesText, redfishErrorText } from '../../src/redfish/http-errors.js';
import { waitForTask } from '../../src/redfish/task.js';
import { parseTask } from '../../src/redfish/parse.js';

const many = (n: number, text = (i: number) => `message ${i}`) => Array.from({ length: n }, (_, i) => ({ MessageId: `Base.1.8.M${i}`, Message: text(i), MessageArgs: [`a${i}`] }));

describe('Redfish error text', () => {
  it('of a hundred thousand distinct messages takes the error message and the first 15 others, each cut to 300 characters', () => {
    const body = { error: { message: 'A general error has occurred.', '@Message.ExtendedInfo': many(100_000) } };
    const text = redfishErrorText(body)!;
    expect(text.split('; ')).toEqual(['A general error has occurred.', ...Array.from({ length: 15 }, (_, i) => `message ${i}`)]);
    const long = redfishErrorText({ error: { '@Message.ExtendedInfo': many(3, () => 'x'.repeat(5000)) } })!;
    expect(long).toBe(`${'x'.repeat(300)}…`); // the same text three times is one
    expect(extendedInfoOf(body.error)).toHaveLength(16);
    expect(messagesText({ Messages: many(100_000) })!.split('; ')).toHaveLength(16);
  });

  it('keeps the messages of an ordinary answer as they are, duplicates once', () => {
    const body = { error: { message: 'A general error has occurred.', '@Message.ExtendedInfo': [{ Message: 'The property BootSourceOverrideMode is read only.' }, { Message: 'The property BootSourceOverrideMode is read only.' }] } };
    expect(redfishErrorText(body)).toBe('A general error has occurred.; The property BootSourceOverrideMode is read only.');
  });
});

describe('secrets in what a BMC echoes', () => {
  const secret = 'S3cretPassw0rd-of-the-BMC';

  it('are replaced before a message is cut: a secret across the cut leaves none of itself (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 270, max: 299 }), (at) => {
        const message = `${'x'.repeat(at)}${secret} echoed`;
        const text = httpError('PATCH', '/redfish/v1/AccountService/Accounts/2', 400, { error: { message, '@Message.ExtendedInfo': [{ Message: message }] } }, [secret]).message;
        expect(text).not.toContain(secret.slice(0, 3));
      }),
    );
  });

  it('in a failed task\'s messages are scrubbed by the client before they reach the error', async () => {
    const task = { '@odata.type': '#Task.v1_4_3.Task', '@odata.id': '/redfish/v1/TaskService/Tasks/1', TaskState: 'Exception', TaskStatus: 'Critical', Messages: [{ Message: `download of https://admin:${secret}@images/bios.bin failed` }] };
    const client = { getReply: async () => ({ status: 200, headers: {}, body: task }), scrub: (text: string) => text.split(secret).join('[redacted]') };
    const err = await waitForTask(client as unknown as Parameters<typeof waitForTask>[0], '/redfish/v1/TaskService/Tasks/1').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain('download of https://admin:[redacted]@images/bios.bin failed');
    expect(err?.message).not.toContain(secret);
  });
});

describe('a Task as the BMC sends it', () => {
  it('keeps its last 8 messages, each cut to 512 characters; a TaskState outside DSP0268 is no state', () => {
    const task = parseTask({ '@odata.id': '/redfish/v1/TaskService/Tasks/1', TaskState: 'Exception', TaskStatus: 'Critical', Messages: many(1000, (i) => `${i}:${'y'.repeat(2000)}`) });
    expect(task.messages).toHaveLength(8);
    expect(task.messages![0]!.startsWith('992:')).toBe(true);
    expect(task.messages!.every((m) => m.length <= 513)).toBe(true);
    expect(task.messageIds).toHaveLength(32);
    expect(task.state).toBe('Exception');
    expect(parseTask({ TaskState: 'x'.repeat(1 << 20), TaskStatus: 'y'.repeat(1000) })).not.toHaveProperty('state');
    expect(parseTask({ TaskState: 'Flashing' })).not.toHaveProperty('state');
  });

  it('any JSON gives a task within the bounds', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (json) => {
        const task = parseTask(json);
        expect(task.messages?.length ?? 0).toBeLessThanOrEqual(8);
        expect((task.messages ?? []).every((m) => m.length <= 513)).toBe(true);
        expect(task.messageIds?.length ?? 0).toBeLessThanOrEqual(32);
        expect(task.state === undefined || task.state.length <= 11).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
