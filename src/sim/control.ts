/**
 * The simulator's control API for fault injection, on loopback only and without
 * authentication (it controls simulated machines, nothing real):
 *   GET    /machines          every machine's address, MAC, UUID, power, boot, LED and faults
 *   POST   /faults            {"select": "all" | [indices] | {"share": 0.1}, "faults": {...SimFaults}}
 *   DELETE /faults            clear every fault
 *   GET    /quirks           the quirk catalogue (name, protocol, description, where seen, survived by)
 *   POST   /quirks           {"select": ..., "quirks": ["name", ...], "on": true | false}
 *   DELETE /quirks           every machine back to its vendor variant's quirks
 *   POST/DELETE /latency, GET /requests/{index}: the latency model (latency-control.ts)
 *   GET    /serial            serial lines: how many stream, bytes emitted, active SOL payloads
 *   POST   /serial            {"select": ..., "stream": true | false}: streaming mode of the serial
 *                             lines (print without pause at 115200 baud, for console load tests)
 *   POST   /serial            {"select": ..., "storm": {"lines": N}}: a boot storm, every selected
 *                             running machine prints N numbered, checksummed lines at line speed
 */
import { listen } from '../net/listen.js';
import { createServer } from 'node:http';
import type { Fleet, FaultSelector } from './fleet.js';
import type { SimFaults } from './machine.js';
import { latencyRoute } from './latency-control.js';
import { MAX_STORM_LINES } from './serial.js';
import { isSimQuirk, SIM_QUIRKS, type SimQuirkName } from './quirks.js';

const FAULT_KEYS: ReadonlyArray<keyof SimFaults> = ['noAnswer', 'delayMs', 'dropRate', 'wrongCredentials', 'redfishStatus', 'redfishHang', 'redfishStraggler', 'redfishDisabled', 'sessionsFull', 'firmwareTaskMs', 'actSilently', 'actStatus', 'actRefused', 'ipmiActRefused', 'echoCredentials'];

function parseSelector(value: unknown): FaultSelector | undefined {
  if (value === 'all' || value === undefined) return 'all';
  if (Array.isArray(value) && value.every((v) => Number.isInteger(v))) return value as number[];
  if (typeof value === 'object' && value !== null && typeof (value as { share?: unknown }).share === 'number') return { share: (value as { share: number }).share };
  return undefined;
}

function parseFaults(value: unknown): Partial<SimFaults> | string {
  if (typeof value !== 'object' || value === null) return 'faults must be an object';
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!FAULT_KEYS.includes(k as keyof SimFaults)) return `unknown fault ${JSON.stringify(k)} (known: ${FAULT_KEYS.join(', ')})`;
    if (k === 'ipmiActRefused' && v !== null && !(Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xff)) return 'ipmiActRefused must be an IPMI completion code (1..255) or null';
    out[k] = v;
  }
  return out as Partial<SimFaults>;
}

function parseQuirks(value: unknown): SimQuirkName[] | string {
  if (!Array.isArray(value) || !value.every((q) => typeof q === 'string')) return 'quirks must be a list of names';
  const unknown = value.find((q: string) => !isSimQuirk(q));
  if (unknown !== undefined) return `unknown quirk ${JSON.stringify(unknown)} (known: ${Object.keys(SIM_QUIRKS).join(', ') || 'none'})`;
  return value as SimQuirkName[];
}

export async function startControlServer(fleet: Fleet, port: number, host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
    if (req.method === 'GET' && req.url === '/machines') {
      return reply(
        200,
        fleet.machines.map(({ state: s }) => ({ index: s.index, address: s.address, mac: s.mac, uuid: s.uuid, manufacturer: s.manufacturer, power: s.power, boot: s.boot, bootPersistent: s.bootPersistent, bootOrder: s.bootOrder, pendingBootOrder: s.pendingBootOrder, lastBoot: s.lastBoot, identify: s.identify, faults: s.faults, quirks: [...s.quirks] })),
      );
    }
    if (req.method === 'DELETE' && req.url === '/faults') {
      fleet.clearFaults();
      return reply(200, { cleared: true });
    }
    if (req.method === 'GET' && req.url === '/quirks') return reply(200, SIM_QUIRKS);
    if (req.method === 'DELETE' && req.url === '/quirks') {
      fleet.resetQuirks();
      return reply(200, { reset: true });
    }
    if (req.method === 'GET' && req.url === '/serial') return reply(200, fleet.serialStats());
    const latency = req.method === 'POST' ? undefined : latencyRoute(fleet, req.method ?? '', req.url ?? '', () => undefined);
    if (latency) return reply(latency.status, latency.body);
    if (req.method === 'POST' && (req.url === '/faults' || req.url === '/serial' || req.url === '/quirks' || req.url === '/latency')) {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d;
        if (body.length > 65536) req.destroy();
      });
      req.on('end', () => {
        let parsed: { select?: unknown; faults?: unknown; stream?: unknown; storm?: unknown; quirks?: unknown; on?: unknown };
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          return reply(400, { error: 'body is not JSON' });
        }
        const latency = latencyRoute(fleet, 'POST', req.url ?? '', () => parsed);
        if (latency) return reply(latency.status, latency.body);
        const selector = parseSelector(parsed.select);
        if (!selector) return reply(400, { error: 'select must be "all", a list of indices, or {"share": 0..1}' });
        if (req.url === '/serial' && parsed.storm !== undefined) {
          const lines = (parsed.storm as { lines?: unknown } | null)?.lines;
          if (typeof lines !== 'number' || !Number.isInteger(lines) || lines < 1 || lines > MAX_STORM_LINES) return reply(400, { error: `storm.lines must be an integer from 1 to ${MAX_STORM_LINES}` });
          return reply(200, { changed: fleet.serialStorm(selector, lines) });
        }
        if (req.url === '/serial') {
          if (typeof parsed.stream !== 'boolean') return reply(400, { error: 'stream must be true or false' });
          return reply(200, { changed: fleet.setSerialStream(selector, parsed.stream) });
        }
        if (req.url === '/quirks') {
          const quirks = parseQuirks(parsed.quirks);
          if (typeof quirks === 'string') return reply(400, { error: quirks });
          if (typeof parsed.on !== 'boolean') return reply(400, { error: 'on must be true or false' });
          return reply(200, { changed: fleet.setQuirks(selector, quirks, parsed.on) });
        }
        const faults = parseFaults(parsed.faults);
        if (typeof faults === 'string') return reply(400, { error: faults });
        return reply(200, { changed: fleet.setFaults(selector, faults) });
      });
      return;
    }
    reply(404, { error: 'unknown path' });
  });
  return listen(server, port, host);
}
