/**
 * The daemon's BMC connect settings (daemon.ts bmcConnectSettings): every METAL_BMC_* variable
 * about how a BMC is reached arrives in the options connectOutband gets, in this thread and in the
 * report workers (which receive the same settings).
 */
import { describe, expect, it } from 'vitest';
import { IPMI_SUITES } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/index.js';
import { SUPPORTED_SUITE_IDS } from '../../src/ipmi/cipher.js';
import { bmcConnectSettings } from '../../src/daemon.js';

const BASE = {
  METAL_BMC_PARTITION_ID: 'fra-equ01',
  METAL_BMC_METAL_API_URL: 'http://metal-api:8080/metal',
  METAL_BMC_METAL_API_HMAC_KEY: 'hmac-secret-value-0123',
};

describe('the daemon connects to BMCs as configured', () => {
  it('passes on the credentials, protocol, ports, Redfish TLS and timing settings, and the per-BMC deadline', () => {
    const config = loadConfig({
      ...BASE,
      METAL_BMC_IPMI_PORT: '6230',
      METAL_BMC_IPMI_USER: 'root',
      METAL_BMC_IPMI_PASSWORD: 'calvin',
      METAL_BMC_PROTOCOL: 'redfish',
      METAL_BMC_REDFISH_PORT: '8443',
      METAL_BMC_BMC_SSH_PORT: '18022',
      METAL_BMC_REDFISH_INSECURE: 'yes',
      METAL_BMC_REDFISH_LEGACY_TLS: 'yes',
      METAL_BMC_REDFISH_TIMEOUT: '45s',
      METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: '250ms',
      METAL_BMC_REDFISH_HEDGE_AFTER: '700ms',
      METAL_BMC_BMC_TIMEOUT: '7s',
      METAL_BMC_IPMI_CIPHER_SUITE: 'encrypted',
      METAL_BMC_GUID_ENCODING: 'gigabyte=rfc4122, Dell=smbios',
    });
    expect(bmcConnectSettings(config, '-----BEGIN CERTIFICATE-----')).toEqual({
      user: 'root',
      password: 'calvin',
      protocol: 'redfish',
      ipmiPort: 6230,
      ipmiCipherSuite: 'encrypted',
      guidEncodingByVendor: { gigabyte: 'rfc4122', dell: 'smbios' },
      redfishPort: 8443,
      sshPort: 18022,
      redfishInsecure: true,
      redfishLegacyTls: true,
      redfishRequestTimeoutMs: 45_000,
      redfishOpenConnectionAfterMs: 250,
      redfishHedgeAfterMs: 700,
      redfishCa: '-----BEGIN CERTIFICATE-----',
      timeoutMs: 7000,
    });
  });

  it('consoles of SSH-console BMCs (Dell) on port 22 by default, or METAL_BMC_BMC_SSH_PORT', () => {
    expect(bmcConnectSettings(loadConfig(BASE)).sshPort).toBe(22);
    expect(bmcConnectSettings(loadConfig({ ...BASE, METAL_BMC_BMC_SSH_PORT: '2222' })).sshPort).toBe(2222);
  });

  it('a second Redfish connection after 1 s by default, and at once with METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER=0', () => {
    expect(bmcConnectSettings(loadConfig(BASE)).redfishOpenConnectionAfterMs).toBe(1000);
    expect(bmcConnectSettings(loadConfig({ ...BASE, METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER: '0' })).redfishOpenConnectionAfterMs).toBe(0);
    expect(bmcConnectSettings(loadConfig(BASE))).not.toHaveProperty('redfishCa');
  });

  it('report reads hedge a Redfish GET after 1 s by default, and never with METAL_BMC_REDFISH_HEDGE_AFTER=0', () => {
    expect(bmcConnectSettings(loadConfig(BASE)).redfishHedgeAfterMs).toBe(1000);
    expect(bmcConnectSettings(loadConfig({ ...BASE, METAL_BMC_REDFISH_HEDGE_AFTER: '0' }))).not.toHaveProperty('redfishHedgeAfterMs');
  });

  it('IPMI sessions ask the BMC for its suites by default; METAL_BMC_IPMI_CIPHER_SUITE narrows that or names one; 0 and unknown suites are refused', () => {
    expect(bmcConnectSettings(loadConfig(BASE)).ipmiCipherSuite).toBe('auto');
    expect(bmcConnectSettings(loadConfig({ ...BASE, METAL_BMC_IPMI_CIPHER_SUITE: 'Encrypted' })).ipmiCipherSuite).toBe('encrypted');
    expect(bmcConnectSettings(loadConfig({ ...BASE, METAL_BMC_IPMI_CIPHER_SUITE: '3' })).ipmiCipherSuite).toBe(3);
    expect(IPMI_SUITES).toEqual(SUPPORTED_SUITE_IDS); // the configuration's copy of the client's list
    for (const bad of ['0', '4', '17a', 'aes']) {
      expect(() => loadConfig({ ...BASE, METAL_BMC_IPMI_CIPHER_SUITE: bad })).toThrow(/METAL_BMC_IPMI_CIPHER_SUITE: .* is not auto, encrypted or a cipher suite metal-bmc speaks \(17, 3, 16, 2, 15, 1\)/);
    }
  });
});
