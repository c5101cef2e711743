/**
 * An https metal-api behind a partition's private CA: Node.js verifies against the CAs it ships
 * (Go's client against the system's store), so without METAL_BMC_METAL_API_CA_FILE every report
 * failed on the certificate. The stand-in serves https with the test PKI's server certificate.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { BmcError } from '../../src/errors.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { createPki, type Pki } from '../helpers/pki.js';

const KEY = 'hmac-key-ca-test';
const UUID = '4c4c4544-0042-3910-8051-b4c04f4e4e32';
const body = { partitionid: 'p', reports: { [UUID]: { BMCIp: '10.0.0.1', BMCVersion: '1', BIOSVersion: '', FRU: {}, PowerState: 'ON', IndicatorLEDState: 'LED-OFF', PowerMetric: null, PowerSupplies: [] } } };

let pki: Pki;
let standIn: MetalApiStandIn;
beforeAll(async () => {
  pki = await createPki();
  standIn = await startMetalApiStandIn({ hmacKey: KEY, basePath: '/metal', tls: { cert: readFileSync(pki.serverCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') } });
}, 60_000);
afterAll(async () => {
  await standIn?.close();
  pki?.remove();
});

const BASE = { METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_HMAC_KEY: KEY };

describe('an https metal-api with a private CA', () => {
  it('is refused without the CA file and reached with it, as the configuration hands it to the client', async () => {
    expect(standIn.url).toMatch(/^https:/);
    const without = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, retries: 0 });
    const err = await without.ipmiReport(body).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).message).toMatch(/connection failed \(.*(certificate|UNABLE_TO_VERIFY|SELF_SIGNED)/i);
    expect(standIn.reports).toHaveLength(0);

    const config = loadConfig({ ...BASE, METAL_BMC_METAL_API_URL: standIn.url, METAL_BMC_METAL_API_CA_FILE: pki.ca });
    expect(config.metalApi.caFile).toBe(pki.ca);
    const withCa = createMetalApiClient({ baseUrl: config.metalApi.url, hmacKey: KEY, retries: 0, ca: readFileSync(config.metalApi.caFile!, 'utf8') });
    await expect(withCa.ipmiReport(body)).resolves.toEqual({ created: [UUID], updated: [] });
    await expect(withCa.findIpmiMachine(UUID)).resolves.toMatchObject({ address: '10.0.0.1:623' });

    // another CA does not vouch for it: the CA replaces Node's store, it does not widen it to anyone's
    const other = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, retries: 0, ca: readFileSync(pki.otherCa, 'utf8') });
    await expect(other.ipmiReport(body)).rejects.toThrow(/connection failed/);
  });

  it('the configuration refuses a CA file that is not readable or holds no certificate, naming the variable', () => {
    const load = (file: string) => () => loadConfig({ ...BASE, METAL_BMC_METAL_API_URL: 'https://metal-api/metal', METAL_BMC_METAL_API_CA_FILE: file });
    expect(load(join(pki.dir, 'missing.pem'))).toThrow(/METAL_BMC_METAL_API_CA_FILE: .*is not readable \(ENOENT\)/);
    expect(load(pki.serverKey)).toThrow(ConfigError);
    expect(load(pki.serverKey)).toThrow(/METAL_BMC_METAL_API_CA_FILE: .*holds no PEM certificate/);
    const broken = join(pki.dir, 'broken.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    expect(load(broken)).toThrow(/holds no PEM certificate/);
    const bundle = join(pki.dir, 'bundle.pem');
    writeFileSync(bundle, `# partition CAs\n${readFileSync(pki.otherCa, 'utf8')}${readFileSync(pki.ca, 'utf8')}`);
    expect(load(bundle)().metalApi.caFile).toBe(bundle);
  });

  it('the client takes a CA or a dispatcher, not both', async () => {
    const { Agent } = await import('undici');
    expect(() => createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ca: 'x', dispatcher: new Agent() })).toThrow(/option ca cannot be given with a dispatcher/);
    expect(() => createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ca: '' })).toThrow(/option ca must be non-empty PEM text/);
  });
});
