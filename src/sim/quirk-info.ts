/** What the simulator's quirk catalogue says of one quirk. */
export interface SimQuirkInfo {
  protocol: 'ipmi' | 'redfish';
  /** what the simulated BMC does, in one sentence */
  description: string;
  /** where real firmware does this (vendor, model, or the client workaround that documents it) */
  seenOn: string;
  /** the real client a test runs against this quirk on the simulator: ipmitool, FreeIPMI or curl */
  survivedBy: 'ipmitool' | 'freeipmi' | 'curl' | 'ipmitool+freeipmi';
}
