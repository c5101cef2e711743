/**
 * A power cycle on a BMC that detects duplicate requests (simulator quirk ipmi-duplicate-cf):
 * it answers Chassis Control after 1.5 s, so the client resends it under the same rqSeq after its
 * first 1 s wait, and the resend is answered 0xCF "cannot execute a duplicated request" without
 * being carried out. The machine is a Supermicro-like one, whose power actions go over IPMI first
 * and fall back to Redfish where the failure shows IPMI did not act: the 0xCF must neither end
 * the cycle as a refusal nor send a second one, over Redfish or by the runner.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCommandRunner } from '../../src/commands/runner.js';
import type { Plan } from '../../src/commands/event.js';
import { connectOutband, type ConnectOptions } from '../../src/outband/connect.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimEvent } from '../../src/sim/machine.js';
import { captureLog } from '../helpers/log.js';
import { startTestFleet } from '../helpers/fleet.js';

let fleet: Fleet;
const options = (extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  host: fleet.machines[0]!.state.address,
  user: fleet.user,
  password: fleet.password,
  ipmiPort: fleet.ipmiPort,
  redfishPort: fleet.redfishPort,
  timeoutMs: 20_000,
  ...extra,
});

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1, variants: ['supermicro'], quirks: ['ipmi-duplicate-cf'] });
});
afterAll(async () => {
  await fleet?.close();
});

/** The power actions the machine carries out while `work` runs, over either protocol. */
async function powerActionsDuring(work: () => Promise<unknown>): Promise<{ actions: string[]; outcome: unknown }> {
  const machine = fleet.machines[0]!;
  const actions: string[] = [];
  const onChange = (c: SimEvent) => void (c.kind === 'power' && actions.push(c.action));
  machine.on('change', onChange);
  try {
    const outcome = await work().then(
      () => 'ok',
      (err: unknown) => err,
    );
    return { actions, outcome };
  } finally {
    machine.off('change', onChange);
    fleet.clearFaults();
  }
}

describe('a power cycle answered late, its resend answered 0xCF (duplicated request)', () => {
  it('succeeds once: the 0xCF is no answer, the late answer to the original is', async () => {
    const bmc = await connectOutband(options());
    try {
      expect(bmc.profile.power).toBe('ipmi');
      fleet.machines[0]!.setPower('on', 'up');
      const { actions, outcome } = await powerActionsDuring(() => bmc.powerCycle());
      expect(outcome).toBe('ok');
      expect(actions).toEqual(['cycle']); // not followed by a Redfish PowerCycle
    } finally {
      await bmc.close();
    }
  });

  it('the answer to the original lost too (only 0xCF comes): TIMEOUT that says it may have acted, and no Redfish PowerCycle after it', async () => {
    const bmc = await connectOutband(options({ ipmiRetry: { deadlineMs: 3000 } }));
    try {
      fleet.machines[0]!.setPower('on', 'up');
      fleet.setFaults([0], { actSilently: true }); // the chassis control carried out, its answer lost (Redfish's too)
      const { actions, outcome } = await powerActionsDuring(() => bmc.powerCycle());
      expect(outcome).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/netfn 0x0 cmd 0x2 to BMC .*: within 3000 ms only one answer to its resends, "cannot execute a duplicated request" \(0xCF\): the BMC got the request and handled it, its answer was lost; it may have acted$/) });
      expect(actions).toEqual(['cycle']);
    } finally {
      await bmc.close();
    }
  });

  it('over IPMI alone through the command runner: CYCLE ends outcome unknown and is not tried again', async () => {
    const runner = createCommandRunner({
      connect: (ipmi, { signal }) => connectOutband(options({ host: ipmi.host, protocol: 'ipmi', ipmiRetry: { deadlineMs: 3000 }, signal })),
      concurrency: 1,
      timeoutMs: 15_000,
      logger: captureLog().logger,
      retryDelayMs: 1,
    });
    const address = fleet.machines[0]!.state.address;
    const plan: Plan = { machineId: 'm0', key: 'm0', type: 'command', command: 'CYCLE', ipmi: { address: `${address}:${fleet.ipmiPort}`, host: address, port: fleet.ipmiPort }, actions: [{ kind: 'command', command: 'CYCLE' }] };
    fleet.machines[0]!.setPower('on', 'up');
    fleet.setFaults([0], { actSilently: true });
    const { actions, outcome } = await powerActionsDuring(async () => {
      const result = await runner.submit(plan);
      expect(result).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
      expect(result.attempts).toBeUndefined();
    });
    expect(outcome).toBe('ok');
    expect(actions).toEqual(['cycle']);
  });
});
