/** Which System a BMC manages when its service lists several (blades, multi-node chassis, sushy-tools). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstSystemPath, systemOfBmc, type RedfishGetter } from '../../src/redfish/index.js';

/** A read-only Redfish tree in memory: path → body; an unknown path is a 404-like failure. */
function tree(resources: Record<string, unknown>): RedfishGetter & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    get: async <T>(path: string): Promise<T> => {
      reads.push(path);
      if (!Object.hasOwn(resources, path)) throw new Error(`404 ${path}`);
      return resources[path] as T;
    },
  };
}

const members = (paths: string[]) => ({ Members: paths.map((p) => ({ '@odata.id': p })) });

function service(systems: string[], managed: string[] | undefined): Record<string, unknown> {
  return {
    '/redfish/v1/': { Systems: { '@odata.id': '/redfish/v1/Systems' }, Managers: { '@odata.id': '/redfish/v1/Managers' } },
    '/redfish/v1/Systems': members(systems),
    '/redfish/v1/Managers': members(['/redfish/v1/Managers/BMC']),
    '/redfish/v1/Managers/BMC': managed === undefined ? { Id: 'BMC' } : { Id: 'BMC', Links: { ManagerForServers: managed.map((p) => ({ '@odata.id': p })) } },
  };
}

describe('the System of this BMC', () => {
  it('is the only member without reading a Manager', async () => {
    const t = tree(service(['/redfish/v1/Systems/1'], undefined));
    expect(await firstSystemPath(t)).toBe('/redfish/v1/Systems/1');
    expect(t.reads).not.toContain('/redfish/v1/Managers');
  });

  it("is the member the Manager's ManagerForServers names, trailing slash or not", async () => {
    const t = tree(service(['/redfish/v1/Systems/Node0', '/redfish/v1/Systems/Node1/'], ['/redfish/v1/Systems/Node1']));
    expect(await firstSystemPath(t)).toBe('/redfish/v1/Systems/Node1/');
  });

  it('is the first member when no Manager names one, or the Managers cannot be read', async () => {
    expect(await firstSystemPath(tree(service(['/redfish/v1/Systems/A', '/redfish/v1/Systems/B'], undefined)))).toBe('/redfish/v1/Systems/A');
    const broken = service(['/redfish/v1/Systems/A', '/redfish/v1/Systems/B'], ['/redfish/v1/Systems/B']);
    delete broken['/redfish/v1/Managers/BMC'];
    expect(await firstSystemPath(tree(broken))).toBe('/redfish/v1/Systems/A');
  });

  it('reads the Managers at once (one round trip on the path, not one per Manager)', async () => {
    const managers = ['A', 'B', 'C'].map((i) => `/redfish/v1/Managers/${i}`);
    const resources: Record<string, unknown> = {
      '/redfish/v1/Managers': members(managers),
      ...Object.fromEntries(managers.map((m, i) => [m, { Links: { ManagerForServers: [{ '@odata.id': `/redfish/v1/Systems/${i}` }] } }])),
    };
    let inFlight = 0;
    let most = 0;
    const get = async <T>(path: string): Promise<T> => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      return resources[path] as T;
    };
    expect(await systemOfBmc({ get }, ['/redfish/v1/Systems/9', '/redfish/v1/Systems/2'], '/redfish/v1/Managers')).toBe('/redfish/v1/Systems/2');
    expect(most).toBe(managers.length);
  });

  it('is always one of the members, whatever the Manager names', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.stringMatching(/^[A-Za-z0-9]{1,6}$/), { minLength: 1, maxLength: 5 }), fc.array(fc.stringMatching(/^[A-Za-z0-9]{1,6}$/), { maxLength: 4 }), async (ids, named) => {
        const systems = ids.map((i) => `/redfish/v1/Systems/${i}`);
        const chosen = await systemOfBmc(tree(service(systems, named.map((i) => `/redfish/v1/Systems/${i}`))), systems, '/redfish/v1/Managers');
        expect(systems).toContain(chosen);
        const namedMember = systems.find((s) => named.includes(s.slice('/redfish/v1/Systems/'.length)));
        expect(chosen).toBe(systems.length > 1 && namedMember !== undefined ? namedMember : systems[0]);
      }),
    );
  });
});
