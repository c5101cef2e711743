/**
 * Self time of a `.cpuprofile` by function and by module (our code by folder, undici, TLS, crypto,
 * pino, JSON, GC, ...), in ms and in ms per BMC; or, for a `.heapprofile` (bench/profile.ts), the
 * bytes allocated by function and by module, in MiB and in KiB per BMC.
 * Usage: npx tsx bench/profile-summary.ts FILE.cpuprofile|FILE.heapprofile [BMCS] [TOP]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** url pattern -> module name; the first match wins */
const MODULES: Array<[RegExp, string]> = [
  [/\/src\/([^/]+)\//, 'src/$1'],
  [/\/src\/[^/]+\.ts/, 'src'],
  [/\/bench\//, 'bench'],
  [/node_modules\/(undici)\//, '$1'],
  [/node_modules\/(pino[^/]*)\//, 'pino'],
  [/node_modules\/(tsx|esbuild)\//, 'tsx'],
  [/node_modules\/([^/]+)\//, '$1'],
  [/^node:(_tls|tls)|internal\/tls|_tls_/, 'node TLS'],
  [/^node:(internal\/)?crypto|internal\/crypto/, 'node crypto'],
  [/^node:(internal\/)?(net|stream|dgram|streams)|internal\/streams|internal\/stream_base|internal\/dgram/, 'node net/stream/dgram'],
  [/^node:(internal\/)?(timers|process)|internal\/timers|internal\/process/, 'node timers/process'],
  [/^node:/, 'node other'],
];

export function moduleOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName.startsWith('(')) return functionName;
    if (/^(parse|stringify)$/.test(functionName)) return 'JSON (native)';
    return 'native';
  }
  for (const [re, name] of MODULES) {
    const m = re.exec(url);
    if (m) return name.replace('$1', m[1] ?? '');
  }
  return 'other';
}

interface Tally {
  total: number;
  byFunction: Map<string, number>;
  byModule: Map<string, number>;
}

/** Sums `amount` per function ("name src/x.ts:12") and per module; the idle frame is left out. */
function tally(): Tally & { add(frame: Node['callFrame'], amount: number): void } {
  const t = {
    total: 0,
    byFunction: new Map<string, number>(),
    byModule: new Map<string, number>(),
    add({ functionName, url, lineNumber }: Node['callFrame'], amount: number) {
      const mod = moduleOf(url, functionName);
      if (mod === '(idle)') return;
      t.total += amount;
      const where = url === '' ? '' : ` ${url.replace(/^.*\/(src|node_modules|bench)\//, '$1/')}:${lineNumber + 1}`;
      const key = `${functionName || '(anonymous)'}${where}`;
      t.byFunction.set(key, (t.byFunction.get(key) ?? 0) + amount);
      t.byModule.set(mod, (t.byModule.get(mod) ?? 0) + amount);
    },
  };
  return t;
}

/** Self time (µs) by function and by module, from a CPU profile. */
export function summarise(profile: Profile): Tally {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const t = tally();
  for (const [id, us] of selfUs) t.add(nodes.get(id)!.callFrame, us);
  return t;
}

interface AllocationNode {
  callFrame: Node['callFrame'];
  selfSize: number;
  children: AllocationNode[];
}

/** Bytes allocated (sampled) by function and by module, from a sampling heap profile. */
export function summariseAllocations(head: AllocationNode): Tally {
  const t = tally();
  const visit = (n: AllocationNode) => {
    if (n.selfSize > 0) t.add(n.callFrame, n.selfSize);
    n.children.forEach(visit);
  };
  visit(head);
  return t;
}

/** The header line, then both tables, each row formatted by `row(amount, name)` (amount in the tally's unit). */
function printTally(header: string, { byFunction, byModule }: Tally, row: (amount: number, name: string) => string, top: number): void {
  console.log(`${header}\n\nby module:`);
  for (const [k, v] of [...byModule].sort((a, b) => b[1] - a[1])) console.log(row(v, k));
  console.log('\nby function (self):');
  for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(row(v, k));
}

function printAllocations(head: AllocationNode, bmcs: number, top: number): void {
  const t = summariseAllocations(head);
  const mib = (b: number) => b / 2 ** 20;
  const row = (b: number, name: string) => `${mib(b).toFixed(1).padStart(9)} MiB ${(b / 1024 / bmcs).toFixed(1).padStart(8)} KiB/BMC ${((100 * b) / t.total).toFixed(1).padStart(5)} %  ${name}`;
  printTally(`allocated (sampled) ${mib(t.total).toFixed(0)} MiB, ${(t.total / 1024 / bmcs).toFixed(1)} KiB per BMC over ${bmcs} BMCs`, t, row, top);
}

function printCpu(profile: Profile, bmcs: number, top: number): void {
  const t = summarise(profile);
  const row = (us: number, name: string) => `${(us / 1000).toFixed(1).padStart(9)} ms ${(us / 1000 / bmcs).toFixed(3).padStart(8)} ms/BMC ${((100 * us) / t.total).toFixed(1).padStart(5)} %  ${name}`;
  printTally(`busy (not idle) ${(t.total / 1000).toFixed(0)} ms, ${(t.total / 1000 / bmcs).toFixed(2)} ms per BMC over ${bmcs} BMCs`, t, row, top);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: profile-summary FILE.cpuprofile|FILE.heapprofile [BMCS] [TOP]');
  const bmcs = Number(process.argv[3] ?? 1);
  const top = Number(process.argv[4] ?? 40);
  if (file.endsWith('.heapprofile')) printAllocations((JSON.parse(readFileSync(file, 'utf8')) as { head: AllocationNode }).head, bmcs, top);
  else printCpu(JSON.parse(readFileSync(file, 'utf8')) as Profile, bmcs, top);
}
