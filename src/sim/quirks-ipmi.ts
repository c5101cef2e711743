/**
 * IPMI quirks of real BMCs the simulator can show (see quirks.ts). Each entry names a behaviour
 * seen on real firmware and the real client the tests prove to survive it on the simulator
 * (test/integration/quirk-matrix-ipmi.test.ts runs ipmitool or FreeIPMI against each one).
 */
import type { SimQuirkInfo } from './quirk-info.js';
import type { SimVariantName } from './machine.js';

export const IPMI_QUIRKS = {
  'ipmi-presession-rmcpplus': {
    protocol: 'ipmi',
    description: 'answers Get Channel Authentication Capabilities and Get Channel Cipher Suites in the RMCP+ wrapper (payload type IPMI, session id 0), also when asked in the IPMI 1.5 wrapper',
    seenOn: 'the independent IPMI 2.0 BMC of metal-bmc issue 10; ipmitool decodes the answer by its own auth type (lanplus ipmi_lanplus_poll_recv), so it never noticed',
    survivedBy: 'ipmitool',
  },
  'ipmi-no-cipher-suites': {
    protocol: 'ipmi',
    description: 'answers Get Channel Cipher Suites (optional in IPMI 2.0) with 0xC1 invalid command',
    seenOn: 'IPMI 2.0 BMCs before the command was common (ipmitool 1.8.19 falls back to suite 3 when it fails; FreeIPMI never asks and uses suite 3)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-cipher-suites-silent': {
    protocol: 'ipmi',
    description: 'never answers Get Channel Cipher Suites',
    seenOn: 'the independent IPMI 2.0 BMC of metal-bmc issue 10 (our client timed out after 10 s there); IBM OpenBMC OP940 (ibm-openbmc/dev#3641, ipmitool: "Unable to Get Channel Cipher Suites"); ipmitool then uses suite 3, FreeIPMI never asks',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-cipher-suites-garbage': {
    protocol: 'ipmi',
    description: 'answers Get Channel Cipher Suites with records that name no cipher suite',
    seenOn: 'Sun Fire 4100/4200/4500 with ILOM (FreeIPMI workaround flag sun20: "invalid cipher suite records")',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-open-session-own-suite': {
    protocol: 'ipmi',
    description: 'answers Open Session with the algorithms of cipher suite 3 whatever suite was asked for (IPMI 2.0 section 13.17 lets the BMC choose)',
    seenOn: 'BMCs that pick the algorithms themselves (IPMI 2.0 section 13.17); ipmitool and FreeIPMI refuse an answer other than asked and work when asked for suite 3 (ipmitool -C 3, ipmipower -I 3)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-no-system-guid': {
    protocol: 'ipmi',
    description: 'answers Get System GUID with 0xC1 invalid command',
    seenOn: 'the independent IPMI 2.0 BMC of metal-bmc issue 10 (Get System GUID is optional in IPMI 2.0 section 22.14)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-guid-rfc4122': {
    protocol: 'ipmi',
    description: 'sends Get System GUID in textual (RFC 4122) byte order instead of the SMBIOS order most BMCs use (first three fields least significant byte first)',
    seenOn: 'the BMC of ipmitool/ipmitool#239, which ipmitool 1.8.19 prints as "GUID Encoding : RFC4122" (IPMI 2.0 section 20.8 asks for the reverse of RFC 4122; ipmitool guesses the order from the version digit)',
    survivedBy: 'ipmitool',
  },
  'ipmi-guid-unrelated': {
    protocol: 'ipmi',
    description: 'answers Get System GUID with a GUID of the BMC\'s own (a name-based version-3 UUID), not the host\'s SMBIOS UUID in any byte order',
    seenOn: 'the BMC of ipmitool/ipmitool#239, whose GUID is a version-3 UUID made from "Unique BMC Identifier"; OpenBMC, whose Get System GUID answers a UUID property of the BMC\'s inventory, not the host\'s SMBIOS table (openbmc/openbmc#3854: none provided, a BMC machine-id suggested)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-no-fru': {
    protocol: 'ipmi',
    description: 'has no FRU device 0: Get FRU Inventory Area Info and Read FRU Data answer 0xCB not present',
    seenOn: 'BMC boards without a programmed FRU EEPROM (ipmitool fru print says "Device not present")',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-fru-bad-checksum': {
    protocol: 'ipmi',
    description: "ships a FRU whose board area checksum is wrong (the fields are intact)",
    seenOn: 'Dell PowerEdge R610/R710 and Inventec boards (FreeIPMI added skipchecks for them), ASRock Rack (kontron/python-ipmi#186); ipmitool prints the fields',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-no-identify': {
    protocol: 'ipmi',
    description: 'answers Chassis Identify with 0xC1 invalid command; its Chassis Status leaves the optional identify state out (bit 6 of the third byte clear)',
    seenOn: 'BMCs without an identify LED; OpenIPMI ipmi_sim without a chassis_control script refuses Chassis Identify (0xCC) and never reports an identify state (its Chassis Status is 00 00 00)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-identify-no-force': {
    protocol: 'ipmi',
    description: 'answers Chassis Identify carrying the optional Force Identify On byte with 0xC7 request data length invalid; the one-byte form (an interval, 0 = off) works',
    seenOn: 'Intel SE7501WV2 firmware 1.2 (ipmitool lib/ipmi_chassis.c: "The Force Identify On byte is optional and not supported by all devices"; ipmitool sends it only for identify force)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-operator-only': {
    protocol: 'ipmi',
    description: 'the user may hold Operator at most: RAKP 1 asking Administrator is refused with RMCP+ status 0x0A (unauthorized role)',
    seenOn: 'BMC users set up with Operator as their channel limit (ipmitool -L OPERATOR, ipmipower -l OPERATOR are the workaround)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-operator-only-late': {
    protocol: 'ipmi',
    description: 'the user may hold Operator at most, but RAKP 1 asking Administrator by name only is accepted: Set Session Privilege Level(4) is refused with 0x81 (exceeds the channel or user limit), Operator is accepted',
    seenOn: 'BMCs that check the user\'s limit only when the session privilege is set: pyghmi asks for Operator again on 0x80/0x81 ("some implementations will let us get this far, but suddenly get skiddish"); ipmitool fails the session ("Set Session Privilege Level to ADMINISTRATOR failed") and works with -L OPERATOR; ipmipower asks Operator by default',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-rakp-slow': {
    protocol: 'ipmi',
    description: 'answers RAKP 1 only after 1.2 s, past the 1 s a console first waits, and draws a new random number for every RAKP 1 it gets, a repeated one too: a RAKP 3 answering the first RAKP 2 is then refused with 0x0F invalid integrity check value',
    seenOn: 'BMCs whose handshake state advances with every RAKP message: ipmitool never repeats Open Session, RAKP 1 or RAKP 3 ("not individually retryable, as the session state is advancing", lanplus.c) and restarts the sequence; FreeIPMI gives every repeat a new message tag and takes only the answer to the latest; pyghmi ignores RAKP 2 "invalid session ID" ("a retry scenario invalidated an in-flight transaction") and restarts after RAKP 4 "invalid session ID". No vendor is named for the 1.2 s; ipmitool needs -N 2, ipmipower --retransmission-timeout 2000',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-bad-response-checksum': {
    protocol: 'ipmi',
    description: 'gets the IPMI data checksum of every in-session answer wrong; the packets are otherwise valid and pass the session integrity check (pre-session answers are right)',
    seenOn: 'Supermicro X9SCM-iiF, X9DRi-F and X9DRFR (FreeIPMI workaround flag nochecksumcheck: "return invalid checksums due to implementation errors, but the packet is otherwise valid"; without it "connection timeout", "session timeout"); ipmitool never reads the checksums of an RMCP+ answer',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-bad-presession-checksum': {
    protocol: 'ipmi',
    description: 'gets the IPMI data checksum of its pre-session answers wrong (Get Channel Authentication Capabilities, Get Channel Cipher Suites); the packets are otherwise valid',
    seenOn: 'no vendor named for this answer alone: FreeIPMI applies its nochecksumcheck workaround (Supermicro X9SCM-iiF, X9DRi-F: "checksums are computed incorrectly") to the Get Channel Authentication Capabilities answer too (ipmiconsole_check_checksum), and ipmitool and pyghmi never read the checksums of any answer over LAN',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-close-session-error': {
    protocol: 'ipmi',
    description: 'answers Close Session with completion code 0xFF although it closes the session',
    seenOn: 'BMCs whose Close Session fails although the session ends (ipmitool prints "Close Session command failed" and goes on, e.g. with Cisco IMC in ipmitool/ipmitool#213)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-sequence-restart': {
    protocol: 'ipmi',
    description: 'restarts its outbound session sequence numbers at 1 after every 20 packets it sends in a session',
    seenOn: 'BMCs whose session counter restarts within a session (ipmitool does not check inbound session sequence numbers and survives)',
    survivedBy: 'ipmitool',
  },
  'ipmi-duplicate-cf': {
    protocol: 'ipmi',
    description: 'detects duplicate requests: a request repeated in the same session under the same rqSeq, netFn and command within 5 s is answered with 0xCF (cannot execute a duplicated request) and not carried out; and answers Chassis Control only after 1.5 s, past the 1 s a console first waits, so that the console repeats it',
    seenOn: 'IPMI 2.0 table 5-2 gives 0xCF to devices "which cannot return the response that was returned for the original instance" of a request (the original was handled); ipmitool ignores such an answer and keeps waiting for the original\'s ("Duplicate Request ccode most likely indicates a response to a previous retry", lanplus.c ipmi_lanplus_send_payload, lan.c ipmi_lan_send_cmd), and resends under the same rqSeq. No vendor is named for the 1.5 s',
    survivedBy: 'ipmitool',
  },
  'ipmi-sol-ack-zero': {
    protocol: 'ipmi',
    description: 'an Intel BMC (manufacturer id 343 in Get Device ID) whose SOL ACKs to the console name 0 accepted characters, without the NACK bit, although it took them all',
    seenOn: 'Intel IPMI 2.0 BMCs: ipmitool reads such an ACK as all accepted only with -o intelplus ("Intel IPMI 2.0 BMC with RMCP+ communication support", is_sol_partial_ack in lanplus.c), else it sends the characters again after every such ACK; FreeIPMI ipmiconsole takes the count literally. No model or firmware is named there',
    survivedBy: 'ipmitool',
  },
  'ipmi-sol-port-swapped': {
    protocol: 'ipmi',
    description: 'names its own UDP port in Activate Payload in network byte order',
    seenOn: 'Supermicro X8DTH-iF (FreeIPMI ipmiconsole corrects the byte order; workaround flag solport ignores the port)',
    survivedBy: 'ipmitool+freeipmi',
  },
  'ipmi-sol-other-port': {
    protocol: 'ipmi',
    description: 'serves SOL on a second UDP port of its own, which Activate Payload names; SOL packets go out of that port',
    seenOn: 'IPMI 2.0 section 24.1 lets a BMC name another port for a payload; FreeIPMI ipmiconsole moves SOL to it (and has the workaround flag solport for Asus P5MT-R and Supermicro X8DTH-iF, which name invalid ones)',
    survivedBy: 'freeipmi',
  },
  'ipmi-sol-self-deactivate': {
    protocol: 'ipmi',
    description: 'deactivates an active SOL payload on its own one second after activation, telling the console with the SOL "deactivating" status',
    seenOn: 'IBM Power 8348-21C (Habanero) BMC: "SOL session closed by BMC" every few seconds (xcat2/xcat-core#685); BMCs that end SOL when another interface takes the serial port (FreeIPMI: "SOL stolen")',
    survivedBy: 'ipmitool',
  },
} satisfies Record<string, SimQuirkInfo>;

export type IpmiQuirkName = keyof typeof IPMI_QUIRKS;

/**
 * The IPMI quirks each vendor variant shows by default, as its real counterpart is known to.
 * Empty: the sources above document these quirks on Sun, Intel, IBM, Cisco, Asus and Supermicro X8
 * boards, none of which a variant stands for (Supermicro X11, Lenovo XCC, Gigabyte, Dell iDRAC).
 */
export const IPMI_VARIANT_QUIRKS: Partial<Record<SimVariantName, ReadonlyArray<keyof typeof IPMI_QUIRKS>>> = {};
