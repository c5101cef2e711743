import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignFates, logNormalMs, MachineLatency, mulberry32, parseLatencySpec, RequestLog } from '../../src/sim/latency.js';

describe('latency spec', () => {
  it('parses distributions, slow and dead shares', () => {
    expect(parseLatencySpec('redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms slow=3%:2s-5s dead=2%')).toEqual({
      redfish: { p50Ms: 150, p99Ms: 2000 },
      ipmi: { p50Ms: 5, p99Ms: 50 },
      slowShare: 0.03,
      slowMs: [2000, 5000],
      deadShare: 0.02,
    });
    expect(parseLatencySpec('dead=0.5')).toEqual({ deadShare: 0.5 });
  });

  it('refuses what it cannot mean, naming the part', () => {
    expect(() => parseLatencySpec('redfish=p50:2s,p99:1s')).toThrow(/p50 <= p99/);
    expect(() => parseLatencySpec('redfish=p50:2s')).toThrow(/p50:DURATION,p99:DURATION/);
    expect(() => parseLatencySpec('bogus=1')).toThrow(/unknown part "bogus"/);
    expect(() => parseLatencySpec('slow=120%')).toThrow(/share/);
    expect(() => parseLatencySpec('slow=60% dead=50%')).toThrow(/exceed/);
    expect(() => parseLatencySpec('ipmi=p50:5x,p99:1s')).toThrow(/ipmi p50/);
  });

  it('never throws anything but a BmcError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          parseLatencySpec(text);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT');
        }
      }),
    );
  });
});

describe('latency model', () => {
  it('assigns exactly the shares, the same for the same seed, others for another seed', () => {
    const fates = assignFates(1000, 'seed-a', { deadShare: 0.02, slowShare: 0.03 });
    expect(fates.filter((f) => f === 'dead')).toHaveLength(20);
    expect(fates.filter((f) => f === 'slow')).toHaveLength(30);
    expect(assignFates(1000, 'seed-a', { deadShare: 0.02, slowShare: 0.03 })).toEqual(fates);
    expect(assignFates(1000, 'seed-b', { deadShare: 0.02, slowShare: 0.03 })).not.toEqual(fates);
  });

  it('draws a log-normal with the given p50 and p99', () => {
    const random = mulberry32(42);
    const draws = Array.from({ length: 20_000 }, () => logNormalMs({ p50Ms: 150, p99Ms: 2000 }, random)).sort((a, b) => a - b);
    expect(draws[10_000]!).toBeGreaterThan(140);
    expect(draws[10_000]!).toBeLessThan(160);
    expect(draws[19_800]!).toBeGreaterThan(1700);
    expect(draws[19_800]!).toBeLessThan(2300);
    expect(draws[0]!).toBeGreaterThan(0);
  });

  it('a machine draws the same delays from the same seed; slow machines within their range; dead never answer', () => {
    const model = { redfish: { p50Ms: 150, p99Ms: 2000 }, slowMs: [2000, 5000] as const };
    const a = new MachineLatency('live', model, 's', 7);
    const b = new MachineLatency('live', model, 's', 7);
    const seqA = Array.from({ length: 10 }, () => a.nextDelay('redfish'));
    expect(Array.from({ length: 10 }, () => b.nextDelay('redfish'))).toEqual(seqA);
    expect(new MachineLatency('live', model, 's', 7).nextDelay('ipmi')).toBe(0);
    const slow = new MachineLatency('slow', model, 's', 1);
    for (let i = 0; i < 50; i++) {
      const d = slow.nextDelay('ipmi') as number;
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(5000);
    }
    expect(new MachineLatency('dead', model, 's', 1).nextDelay('redfish')).toBe('never');
  });

  it('the request log keeps the last entries only', () => {
    const log = new RequestLog(3);
    for (let i = 0; i < 5; i++) log.add({ protocol: 'redfish', what: `GET /${i}`, atMs: i });
    expect(log.records.map((r) => r.what)).toEqual(['GET /2', 'GET /3', 'GET /4']);
  });
});
