/**
 * The key the trust store files a BMC under, in a module of its own: the Redfish session memory
 * keys sessions by it too, and it is loaded on the IPMI-only path, which must not pull in
 * trust.ts's TLS probe (node:tls; the bundle's IPMI path loads no HTTP or TLS).
 */

/** A trust key from a MAC address (lower case, colons) or, without one, the IP address. */
export function trustKey(bmc: { mac?: string; ip: string }): string {
  return bmc.mac ? `mac:${bmc.mac.toLowerCase()}` : `ip:${bmc.ip}`;
}
