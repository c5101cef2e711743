/**
 * The inverse of the parsers: lease records → file text, as dhcpd and Kea write it.
 * Used by the simulator's lease writer and by the round-trip property tests.
 */
import { keaEscape } from './kea.js';
import { KEA_INFINITE_LIFETIME, type IscLease, type KeaLease } from './types.js';

export type IscLeaseInput = Omit<IscLease, 'line'>;
export type KeaLeaseInput = Omit<KeaLease, 'line'>;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `<weekday> yyyy/mm/dd hh:mm:ss` in UTC, as dhcpd writes it. */
export function formatIscDate(date: Date | 'never'): string {
  if (date === 'never') return 'never';
  const day = `${pad(date.getUTCFullYear(), 4)}/${pad(date.getUTCMonth() + 1)}/${pad(date.getUTCDate())}`;
  return `${date.getUTCDay()} ${day} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
}

/** A dhcpd string literal: `"` and `\` escaped, bytes outside printable ASCII as octal. */
export function quoteIsc(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += `\\${text[i] as string}`;
    else if (c < 0x20 || c > 0x7e) out += `\\${(c & 0xff).toString(8).padStart(3, '0')}`;
    else out += text[i] as string;
  }
  return `${out}"`;
}

function renderIscLease(l: IscLeaseInput): string {
  const lines = [`lease ${l.ip} {`];
  if (l.starts !== undefined) lines.push(`  starts ${formatIscDate(l.starts)};`);
  if (l.ends !== undefined) lines.push(`  ends ${formatIscDate(l.ends)};`);
  if (l.bindingState !== undefined) lines.push(`  binding state ${l.bindingState};`);
  if (l.nextBindingState !== undefined) lines.push(`  next binding state ${l.nextBindingState};`);
  if (l.mac !== undefined) lines.push(`  hardware ethernet ${l.mac};`);
  if (l.uid !== undefined) lines.push(`  uid ${quoteIsc(l.uid)};`);
  for (const [name, value] of Object.entries(l.vars ?? {})) lines.push(`  set ${name} = ${quoteIsc(value)};`);
  if (l.hostname !== undefined) lines.push(`  client-hostname ${quoteIsc(l.hostname)};`);
  lines.push('}');
  return lines.join('\n');
}

/** A dhcpd.leases file with the header dhcpd 4.4 writes. */
export function renderIscLeases(leases: readonly IscLeaseInput[]): string {
  const header = [
    '# The format of this file is documented in the dhcpd.leases(5) manual page.',
    '# This lease file was written by metal-bmc',
    '',
    '# authoring-byte-order entry is generated, DO NOT DELETE',
    'authoring-byte-order little-endian;',
    '',
  ];
  return [...header, ...leases.map(renderIscLease)].join('\n') + '\n';
}

export const KEA_HEADER = 'address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id';

function renderKeaLease(l: KeaLeaseInput): string {
  const expire = l.expire === 'never' ? KEA_INFINITE_LIFETIME : Math.floor(l.expire.getTime() / 1000);
  const lifetime = l.expire === 'never' ? KEA_INFINITE_LIFETIME : l.validLifetime;
  return [
    l.ip,
    l.mac ?? '',
    l.clientId ?? '',
    lifetime,
    expire,
    l.subnetId ?? '',
    0,
    0,
    keaEscape(l.hostname ?? ''),
    l.state,
    keaEscape(l.userContext ?? ''),
    l.poolId ?? '',
  ].join(',');
}

/** A kea-leases4.csv file with the current (Kea 2.4+) header. */
export function renderKeaLeases(leases: readonly KeaLeaseInput[]): string {
  return [KEA_HEADER, ...leases.map(renderKeaLease)].join('\n') + '\n';
}
