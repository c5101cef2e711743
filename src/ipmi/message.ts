/**
 * IPMI messages as carried on LAN (IPMI 2.0 section 13.8): request and response
 * framing with the two checksums, and the completion codes of table 5-2.
 */
import { DecodeError } from '../errors.js';

export const BMC_ADDRESS = 0x20;
export const REMOTE_CONSOLE_ADDRESS = 0x81;

export const NetFn = { chassis: 0x00, app: 0x06, storage: 0x0a, transport: 0x0c } as const;

export interface IpmiRequest {
  netFn: number;
  cmd: number;
  /** 6-bit request sequence number used to match the response */
  seq: number;
  data: Buffer;
  rsAddr?: number;
  rqAddr?: number;
  lun?: number;
}

export interface IpmiResponse {
  netFn: number;
  cmd: number;
  seq: number;
  completionCode: number;
  data: Buffer;
}

/** Two's complement checksum: the bytes plus the checksum sum to zero modulo 256. */
export function checksum(bytes: Buffer, start = 0, end = bytes.length): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + bytes[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
}

export function encodeRequest(req: IpmiRequest): Buffer {
  const out = Buffer.alloc(7 + req.data.length);
  out[0] = req.rsAddr ?? BMC_ADDRESS;
  out[1] = (req.netFn << 2) | (req.lun ?? 0);
  out[2] = checksum(out, 0, 2);
  out[3] = req.rqAddr ?? REMOTE_CONSOLE_ADDRESS;
  out[4] = (req.seq & 0x3f) << 2;
  out[5] = req.cmd;
  req.data.copy(out, 6);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}

export function decodeResponse(bytes: Buffer): IpmiResponse {
  const { response, checksumFault } = decodeResponseUnchecked(bytes);
  if (checksumFault) throw new DecodeError(`IPMI response ${checksumFault} checksum mismatch`);
  return response;
}

/** Which of a response's two checksums is wrong (the header's is named when both are). */
export type ChecksumFault = 'header' | 'data';

/**
 * Decodes a response whatever its checksums say, naming a wrong one. Only for a caller that has
 * checked the bytes better (an RMCP+ integrity code covers all of them, see responseTo); everyone
 * else uses decodeResponse, which refuses a wrong checksum.
 */
export function decodeResponseUnchecked(bytes: Buffer): { response: IpmiResponse; checksumFault: ChecksumFault | undefined } {
  if (bytes.length < 8) throw new DecodeError(`IPMI response of ${bytes.length} bytes is too short`);
  const checksumFault = checksum(bytes, 0, 3) !== 0 ? 'header' : checksum(bytes, 3, bytes.length) !== 0 ? 'data' : undefined;
  const response = {
    netFn: bytes[1]! >> 2,
    seq: bytes[4]! >> 2,
    cmd: bytes[5]!,
    completionCode: bytes[6]!,
    data: Buffer.from(bytes.subarray(7, bytes.length - 1)),
  };
  return { response, checksumFault };
}

/**
 * The response to `request` in `bytes`, or undefined when they answer another request (netFn,
 * command and request sequence number decide). Its checksums must hold, unless `integrityChecked`:
 * the packet passed an RMCP+ integrity code, which covers every byte and proves them the BMC's.
 * Then a response whose only fault is a checksum is taken, its `checksumFault` named for a log
 * line: FreeIPMI's workaround nochecksumcheck is for "systems that return invalid checksums due to
 * implementation errors, but the packet is otherwise valid" (Supermicro X9SCM-iiF, X9DRi-F,
 * X9DRFR; without it: "connection timeout", "session timeout"), and ipmitool never reads the
 * checksums of an RMCP+ answer (read_ipmi_response in src/plugins/lanplus/lanplus.c).
 */
export function responseTo(bytes: Buffer, request: Pick<IpmiRequest, 'netFn' | 'cmd' | 'seq'>, integrityChecked: boolean): { response: IpmiResponse; checksumFault: ChecksumFault | undefined } | undefined {
  const decoded = decodeResponseUnchecked(bytes);
  const r = decoded.response;
  if (r.netFn !== (request.netFn | 1) || r.cmd !== request.cmd || r.seq !== request.seq) return undefined;
  if (decoded.checksumFault && !integrityChecked) throw new DecodeError(`IPMI response ${decoded.checksumFault} checksum mismatch`);
  return decoded;
}

/** Server side (simulator): decode a request, encode its response. */
export function decodeRequest(bytes: Buffer): IpmiRequest {
  if (bytes.length < 7) throw new DecodeError(`IPMI request of ${bytes.length} bytes is too short`);
  if (checksum(bytes, 0, 3) !== 0) throw new DecodeError('IPMI request header checksum mismatch');
  if (checksum(bytes, 3, bytes.length) !== 0) throw new DecodeError('IPMI request data checksum mismatch');
  return {
    rsAddr: bytes[0]!,
    netFn: bytes[1]! >> 2,
    lun: bytes[1]! & 3,
    rqAddr: bytes[3]!,
    seq: bytes[4]! >> 2,
    cmd: bytes[5]!,
    data: Buffer.from(bytes.subarray(6, bytes.length - 1)),
  };
}

export function encodeResponse(req: IpmiRequest, completionCode: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(8 + data.length);
  out[0] = req.rqAddr ?? REMOTE_CONSOLE_ADDRESS;
  out[1] = ((req.netFn | 1) << 2) | (req.lun ?? 0);
  out[2] = checksum(out, 0, 2);
  out[3] = req.rsAddr ?? BMC_ADDRESS;
  out[4] = (req.seq & 0x3f) << 2;
  out[5] = req.cmd;
  out[6] = completionCode;
  data.copy(out, 7);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}

/** completion code 0xCF, "cannot execute a duplicated request" (IPMI 2.0 table 5-2): a repeat of a request the BMC handled */
export const DUPLICATE_REQUEST = 0xcf;

const COMPLETION_CODES: Record<number, string> = {
  0x00: 'success',
  0xc0: 'node busy',
  0xc1: 'invalid or unsupported command',
  0xc2: 'command invalid for the given LUN',
  0xc3: 'timeout while processing the command',
  0xc4: 'out of space',
  0xc5: 'reservation cancelled or invalid reservation ID',
  0xc6: 'request data truncated',
  0xc7: 'request data length invalid',
  0xc8: 'request data field length limit exceeded',
  0xc9: 'parameter out of range',
  0xca: 'cannot return the number of requested data bytes',
  0xcb: 'requested sensor, data or record not present',
  0xcc: 'invalid data field in request',
  0xcd: 'command illegal for the specified sensor or record type',
  0xce: 'command response could not be provided',
  0xcf: 'cannot execute a duplicated request',
  0xd0: 'SDR repository in update mode',
  0xd1: 'device in firmware update mode',
  0xd2: 'BMC initialization in progress',
  0xd3: 'destination unavailable',
  0xd4: 'insufficient privilege level',
  0xd5: 'command not supported in the present state',
  0xd6: 'command sub-function disabled or unavailable',
  0xff: 'unspecified error',
};

export function describeCompletionCode(code: number): string {
  return COMPLETION_CODES[code] ?? `completion code 0x${code.toString(16).padStart(2, '0')}`;
}
