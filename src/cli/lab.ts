/**
 * `metal-bmc lab`: brings up the local lab (simulated fleet + lease file, nats-server with
 * JetStream, metal-api stand-in) and runs the daemon on it, then shows one machine command
 * travelling NATS → daemon → BMC → result. Runs until Ctrl-C, or exits after the demo with --once.
 */
import { connect } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { createLogger } from '../log.js';
import { LAB_PARTITION, startLab } from '../lab/lab.js';
import { parseIntegerOption, parseOptions } from './args.js';
import { DEFAULT_PARTS } from './serve.js';
import { parseVariants } from './sim.js';
import { DEFAULT_VARIANTS, SIM_VARIANTS } from '../sim/machine.js';

export const LAB_USAGE = `usage: metal-bmc lab [--count N] [--dir DIR] [--once] [--log-level LEVEL] [ports]

  --count N          simulated machines (default 8)
  --dir DIR          lease file, fleet state, NATS store (default .lab)
  --once             run the demo command, print the result, and stop
  --log-level L      the daemon's log level (default info; its JSON log goes to stderr)
  --variants A,B     vendor variants of the simulated machines (default ${DEFAULT_VARIANTS.join(',')};
                     all: ${Object.keys(SIM_VARIANTS).join(', ')}); the Dell-like ones' consoles are SSH

ports (to run two labs side by side):
  --cidr CIDR        addresses of the simulated BMCs (default 127.11.0.0/16)
  --ipmi-port P      IPMI UDP port of every simulated BMC (default 16230)
  --redfish-port P   Redfish HTTPS port of every simulated BMC (default 18443)
  --ssh-port P       SSH console port of the Dell-like simulated BMCs (default 18022)
  --console-port P   the daemon's TLS+SSH console listener (default 13333)
  --console-ws-port P  the daemon's WebSocket console listener (default 13334)`;

export async function labMain(argv: string[], io: { stdout: NodeJS.WritableStream }): Promise<number> {
  const { values } = parseOptions({
    args: argv,
    options: {
      count: { type: 'string', default: '8' },
      dir: { type: 'string', default: '.lab' },
      once: { type: 'boolean', default: false },
      'log-level': { type: 'string', default: 'info' },
      cidr: { type: 'string', default: '127.11.0.0/16' },
      'ipmi-port': { type: 'string', default: '16230' },
      'redfish-port': { type: 'string', default: '18443' },
      'ssh-port': { type: 'string', default: '18022' },
      variants: { type: 'string', default: DEFAULT_VARIANTS.join(',') },
      'console-port': { type: 'string', default: '13333' },
      'console-ws-port': { type: 'string', default: '13334' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(`${LAB_USAGE}\n`);
    return 0;
  }
  const print = (line: string) => io.stdout.write(`${line}\n`);
  const count = parseIntegerOption(values.count, '--count', 1, 5000)!;
  const logger = createLogger({ level: values['log-level'] }, process.stderr);
  const variants = parseVariants(values.variants);
  const port = (name: 'ipmi-port' | 'redfish-port' | 'ssh-port' | 'console-port' | 'console-ws-port') => parseIntegerOption(values[name], `--${name}`, 1, 65535)!;
  const lab = await startLab({
    count,
    dir: values.dir,
    ipmiPort: port('ipmi-port'),
    redfishPort: port('redfish-port'),
    sshPort: port('ssh-port'),
    variants,
    consolePort: port('console-port'),
    consoleWsPort: port('console-ws-port'),
    cidr: values.cidr,
    logger,
    parts: DEFAULT_PARTS,
    print,
  });
  const m0 = lab.fleet.machines[0]!.state;
  print('');
  print(`lab is up (state in ${values.dir}/):`);
  print(`  simulated BMCs   ${count} on ${m0.address}-${lab.fleet.machines.at(-1)!.state.address}, IPMI udp/${lab.fleet.ipmiPort}, Redfish https/${lab.fleet.redfishPort}${lab.fleet.ssh ? `, SSH console (Dell-like) tcp/${lab.fleet.sshPort}` : ''}, user ADMIN password ADMIN`);
  print(`  lease file       ${lab.config.leases.file}`);
  print(`  nats-server      ${lab.nats.url} (JetStream), machine events on "${lab.config.mq.machineTopic}", results on "${lab.config.mq.resultTopic}"`);
  print(`  metal-api        ${lab.metalApi.url} (stand-in: HMAC checked, bodies validated against the swagger)`);
  print(`  metal-bmc        health/metrics http://127.0.0.1:${lab.daemon.opsPort}/metrics`);
  print(`  fault injection  curl -X POST http://127.0.0.1:${lab.controlPort}/faults -d '{"select":[0],"faults":{"noAnswer":true}}'`);
  print(`  one BMC          ${selfCommand()} bmc info --address ${m0.address}:${lab.fleet.ipmiPort} --redfish-port ${lab.fleet.redfishPort} --password ADMIN`);
  print(`  console (SSH)    ssh -tt -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ProxyCommand='openssl s_client -quiet -connect 127.0.0.1:${lab.config.console.port} -cert ${lab.pki.clientCert} -key ${lab.pki.clientKey} -CAfile ${lab.pki.ca}' ${m0.uuid}@metal-bmc`);
  print(`  console (web)    https://127.0.0.1:${lab.config.console.wsPort}/console/${m0.uuid}?token=${lab.consoleToken}   (certificate from ${lab.pki.ca})`);
  print(`  console history  ${selfCommand()} console log ${m0.uuid} --since 10m --plain --dir ${lab.config.console.logDir}   boot storm: curl -X POST http://127.0.0.1:${lab.controlPort}/serial -d '{"select":"all","storm":{"lines":1000}}'`);
  print(`  status           ${selfCommand()} status --address http://127.0.0.1:${lab.daemon.opsPort}   page https://127.0.0.1:${lab.config.console.wsPort}/status?token=${lab.consoleToken}`);
  print('');

  await waitFor(() => lab.metalApi.reports.length > 0);
  await waitFor(() => fetch(`http://127.0.0.1:${lab.daemon.opsPort}/readyz`).then((r) => r.status === 200, () => false));
  const code = (await demo(lab, print)) || (await consoleDemo(lab, print));
  if (code === 0) await printWorkers(lab, print);
  if (values.once) {
    await lab.stop();
    return code;
  }
  print('running; Ctrl-C stops the lab');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await lab.stop();
  return 0;
}

/** How this process was started, for the hints: `node /path/metal-bmc.mjs` from the bundle or tsc's build, else the sources through tsx. */
function selfCommand(): string {
  const script = process.argv[1] ?? '';
  return /\.m?js$/.test(script) ? `node ${script}` : 'npx tsx src/cli/main.ts';
}

/** Opens machine 1's console over the WebSocket listener and prints the first line the serial port shows. */
async function consoleDemo(lab: Awaited<ReturnType<typeof startLab>>, print: (line: string) => void): Promise<number> {
  const m = lab.fleet.machines[1]!.state;
  const url = `wss://127.0.0.1:${lab.config.console.wsPort}/v1/machine/${m.uuid}/console`;
  print(`demo: opening the serial console of machine ${m.uuid} over ${url} (Authorization: Bearer <the lab's console token>)`);
  return await new Promise<number>((resolve) => {
    const ws = new WebSocket(url, { ca: readFileSync(lab.pki.ca), headers: { authorization: `Bearer ${lab.consoleToken}` } });
    let text = '';
    let done = false;
    const timer = setTimeout(() => finish(1, `no login prompt within 20 s; console showed ${JSON.stringify(text.slice(-200))}`), 20_000);
    function finish(code: number, line: string) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      print(`demo: ${line}`);
      ws.close();
      resolve(code);
    }
    ws.on('message', (data, binary) => {
      if (!binary) return;
      text += data.toString();
      const prompt = /\S+ login: ?$/.exec(text.replace(/\r/g, ''));
      if (prompt) finish(0, `console shows the login prompt: ${JSON.stringify(prompt[0])}`);
    });
    ws.on('error', (err) => finish(1, `console failed: ${err.message}`));
  });
}

/** Where the daemon read its BMCs and runs its console SOL sessions: its worker threads (METAL_BMC_REPORT_WORKERS, METAL_BMC_CONSOLE_WORKERS), from its metrics. */
async function printWorkers(lab: Awaited<ReturnType<typeof startLab>>, print: (line: string) => void): Promise<void> {
  const text = await (await fetch(`http://127.0.0.1:${lab.daemon.opsPort}/metrics`)).text();
  const readers = [...text.matchAll(/^metal_bmc_report_worker_heap_bytes\{[^}]*thread_id="(\d+)"[^}]*\} /gm)].map((m) => m[1]!);
  const reads = [...text.matchAll(/^metal_bmc_report_worker_reads_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  if (readers.length === 0) print('demo: the BMCs are read in the main thread (METAL_BMC_REPORT_WORKERS=0)');
  else print(`demo: ${reads} BMC reads ran in ${readers.length} report worker thread(s) (thread ids ${readers.join(', ')})`);
  const workers = [...text.matchAll(/^metal_bmc_console_worker_sessions\{[^}]*thread_id="(\d+)"[^}]*\} (\d+)$/gm)].map((m) => ({ thread: m[1]!, sessions: Number(m[2]) }));
  if (workers.length === 0) return print('demo: console SOL sessions run in the main thread (METAL_BMC_CONSOLE_WORKERS=0)');
  const sessions = workers.reduce((n, w) => n + w.sessions, 0);
  print(`demo: ${sessions} console SOL sessions run in ${workers.length} worker thread(s) (thread ids ${workers.map((w) => w.thread).join(', ')})`);
}

/** Waits for the first report to reach metal-api, and for readiness (NATS consumer set up, lease file read). */
async function waitFor(check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Publishes LED-ON for machine 0 as metal-api would and waits for the daemon's result. */
async function demo(lab: Awaited<ReturnType<typeof startLab>>, print: (line: string) => void): Promise<number> {
  const m = lab.fleet.machines[0]!;
  const nc = await connect({ servers: lab.nats.url, name: 'metal-bmc-lab-demo' });
  try {
    const results = nc.subscribe(lab.config.mq.resultTopic, { max: 1, timeout: 20_000 });
    const event = {
      type: 'command',
      cmd: { target: m.state.uuid, cmd: 'LED-ON', ipmi: { address: `${m.state.address}:${lab.fleet.ipmiPort}`, user: lab.fleet.user, password: lab.fleet.password, interface: 'lanplus', mac: m.state.mac } },
    };
    print(`demo: publishing {"type":"command","cmd":"LED-ON"} for machine ${m.state.uuid} on "${lab.config.mq.machineTopic}" (partition ${LAB_PARTITION})`);
    nc.publish(lab.config.mq.machineTopic, JSON.stringify(event));
    for await (const msg of results) {
      print(`demo: result ${msg.string()}`);
      print(`demo: the simulated BMC's identify LED is now ${m.state.identify ? 'on' : 'off'}`);
      return m.state.identify ? 0 : 1;
    }
    print('demo: no result arrived');
    return 1;
  } catch (err) {
    print(`demo: failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await nc.close();
  }
}
