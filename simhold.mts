import { startIpmiSim } from '/work/main/test/helpers/ipmisim.js';
const sim = await startIpmiSim();
console.log(JSON.stringify({ host: sim.host, port: sim.port, user: sim.user, password: sim.password }));
setInterval(() => {}, 1 << 30);
