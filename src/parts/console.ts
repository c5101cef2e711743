/**
 * The console as a part of `metal-bmc serve` (a PartFactory for startDaemon): off with a
 * warning when the console TLS files are not configured, otherwise both listeners with the
 * metal-api backend over the daemon's BMC connector.
 */
import type { DaemonPart, PartFactory } from '../daemon.js';
import { metalApiConsoleBackend } from '../console/backend.js';
import { startConsoleServers } from '../console/index.js';
import { createStatusHttp } from '../status/http.js';
import { statusViewerRoutes } from '../status/page.js';

export const consolePart: PartFactory = async (ctx): Promise<DaemonPart> => {
  const c = ctx.config.console;
  if (!c.caCertFile || !c.certFile || !c.keyFile) {
    ctx.logger.warn('console disabled: METAL_BMC_CONSOLE_CA_CERT_FILE, _CERT_FILE and _KEY_FILE are not set');
    return { name: 'console', stop: async () => undefined };
  }
  const openBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => ctx.metalApi.findIpmiMachine(id, o),
    connect: (t) => ctx.connectBmc(t.host, { user: t.user, password: t.password, port: t.port, signal: t.signal }),
    defaultPort: ctx.config.ipmi.port,
  });
  // the status page and /v1/status behind the console's authentication
  const statusHttp = ctx.status ? createStatusHttp(ctx.status) : undefined;
  const servers = await startConsoleServers({ ...c, openBackend, logger: ctx.logger, registry: ctx.registry, ...(statusHttp ? { viewerRoutes: statusViewerRoutes(statusHttp) } : {}) });
  ctx.status?.consoleViewers(() => servers.hub.viewerCounts());
  return {
    name: 'console',
    async stop(deadlineMs) {
      statusHttp?.close();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs)));
      await Promise.race([servers.close(), deadline]);
      clearTimeout(timer);
    },
  };
};
