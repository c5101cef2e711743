/**
 * The control API's latency routes (control.ts routes them here):
 *   POST   /latency          {"spec": "redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms slow=3%:2s-5s dead=2%"}
 *                            or {"model": {...LatencyModel}}: the fleet's latency model
 *   DELETE /latency          no modelled latency (faults' delayMs still applies)
 *   GET    /requests/{index} the requests machine `index` received, with their start times
 *                            (only with `recordRequests`)
 */
import { BmcError } from '../errors.js';
import type { Fleet } from './fleet.js';
import { parseLatencySpec, type LatencyModel } from './latency.js';

export interface ControlReply {
  status: number;
  body: unknown;
}

function modelOf(body: unknown): LatencyModel {
  if (typeof body !== 'object' || body === null) throw new BmcError('INVALID_ARGUMENT', 'body must be {"spec": "..."} or {"model": {...}}');
  const { spec, model } = body as { spec?: unknown; model?: unknown };
  if (typeof spec === 'string') return parseLatencySpec(spec);
  if (typeof model === 'object' && model !== null) return model as LatencyModel;
  throw new BmcError('INVALID_ARGUMENT', 'body must be {"spec": "..."} or {"model": {...}}');
}

/** The reply to a latency route, or undefined when `method url` is none of them. `body` is the parsed JSON body. */
export function latencyRoute(fleet: Fleet, method: string, url: string, body: () => unknown): ControlReply | undefined {
  if (url === '/latency' && method === 'DELETE') {
    fleet.setLatency(undefined);
    return { status: 200, body: { cleared: true } };
  }
  if (url === '/latency' && method === 'POST') {
    try {
      fleet.setLatency(modelOf(body()));
    } catch (err) {
      return { status: 400, body: { error: (err as Error).message } };
    }
    const fates = { live: 0, slow: 0, dead: 0 };
    for (const m of fleet.machines) fates[m.state.timing?.latency?.fate ?? 'live']++;
    return { status: 200, body: fates };
  }
  const m = /^\/requests\/(\d+)$/.exec(url);
  if (m && method === 'GET') {
    const index = Number(m[1]);
    if (index >= fleet.machines.length) return { status: 404, body: { error: `no machine ${index}` } };
    return { status: 200, body: fleet.requestLog(index) };
  }
  return undefined;
}
