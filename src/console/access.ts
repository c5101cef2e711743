/**
 * Who may open which console. Both listeners turn a verified client certificate (or the
 * WebSocket listener's token) into a `Principal`, and ask `mayOpen()` before the hub is asked
 * for a console.
 *
 * `METAL_BMC_CONSOLE_AUTHZ` is a comma-separated list of rules; a principal may open a machine
 * when any rule allows it:
 *   any          every certificate of the console CA opens every machine (the default, as before)
 *   machine-id   a certificate whose CN, or one of its DNS/URI subject alternative names, equals
 *                the machine id opens that machine
 *   CN=v, OU=v, O=v
 *                a certificate with that subject attribute opens every machine (administrators,
 *                and metal-console's own certificate, which serves every user)
 * The token of token mode replaces the certificate and opens every machine.
 */
import type { PeerCertificate } from 'node:tls';
import type { AuthzRule, SubjectAttribute } from '../config/console-access.js';

export type { AuthzRule } from '../config/console-access.js';

export type Principal =
  | { kind: 'certificate'; subject: string; attributes: ReadonlyMap<SubjectAttribute, readonly string[]>; altNames: readonly string[] }
  | { kind: 'token' };

const SUBJECT_ATTRIBUTES: readonly SubjectAttribute[] = ['CN', 'OU', 'O'];

const MAX_MACHINE_ID = 200;
/** C0, DEL and C1: C1 controls act in some terminals too (U+009B is a CSI) */
export const isControl = (code: number) => code < 0x20 || (code >= 0x7f && code <= 0x9f);

/** A machine id as it arrives from a client: 1 to 200 characters, no control characters, no slash. */
export function validMachineId(id: string): boolean {
  // '.' and '..' would be path segments of their own in metal-api's URL of the machine
  return id.length > 0 && id.length <= MAX_MACHINE_ID && id !== '.' && id !== '..' && ![...id].some((ch) => isControl(ch.charCodeAt(0)) || ch === '/');
}

function values(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** DNS and URI names of `subjectaltname` ("DNS:a, URI:b, IP Address:c"). */
function altNamesOf(text: string | undefined): string[] {
  if (!text) return [];
  return text
    .split(/,\s*/)
    .map((entry) => /^(?:DNS|URI):(.*)$/.exec(entry)?.[1])
    .filter((name): name is string => name !== undefined && name !== '');
}

export function certificatePrincipal(cert: PeerCertificate, subject: string): Principal {
  const attributes = new Map<SubjectAttribute, string[]>();
  for (const attribute of SUBJECT_ATTRIBUTES) attributes.set(attribute, values(cert.subject?.[attribute] as string | string[] | undefined));
  return { kind: 'certificate', subject, attributes, altNames: altNamesOf(cert.subjectaltname) };
}

/** whether the rule lets the principal open every machine, whatever its id */
function opensEvery(rule: AuthzRule, principal: Principal & { kind: 'certificate' }): boolean {
  switch (rule.kind) {
    case 'any':
      return true;
    case 'machine-id':
      return false;
    case 'attribute':
      return (principal.attributes.get(rule.attribute) ?? []).includes(rule.value);
  }
}

function allows(rule: AuthzRule, principal: Principal & { kind: 'certificate' }, machineId: string): boolean {
  if (opensEvery(rule, principal)) return true;
  return rule.kind === 'machine-id' && ((principal.attributes.get('CN') ?? []).includes(machineId) || principal.altNames.includes(machineId));
}

export function mayOpen(rules: readonly AuthzRule[], principal: Principal, machineId: string): boolean {
  if (principal.kind === 'token') return true;
  return rules.some((rule) => allows(rule, principal, machineId));
}

/**
 * Whether the principal may open every machine (the token, `any`, a subject attribute's rule):
 * then `mayOpen` is true for any id, and the status page serves it the whole document, the one
 * cached for every such client, instead of asking per machine.
 */
export function mayOpenEvery(rules: readonly AuthzRule[], principal: Principal): boolean {
  if (principal.kind === 'token') return true;
  return rules.some((rule) => opensEvery(rule, principal));
}
