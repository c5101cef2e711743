/**
 * Serial-over-LAN payload (payload type 1, IPMI 2.0 section 15.9): a 4-byte header and
 * character data. Sequence numbers run 1..15; 0 marks an ack-only packet.
 */
import { DecodeError } from '../errors.js';

/** Remote console → BMC operation bits (byte 4). */
export const SolOperation = {
  nack: 0x40,
  ringWor: 0x20,
  generateBreak: 0x10,
  ctsPause: 0x08,
  dropDcdDsr: 0x04,
  flushInbound: 0x02,
  flushOutbound: 0x01,
} as const;

/** BMC → remote console status bits (byte 4). */
export const SolStatus = {
  nack: 0x40,
  characterTransferUnavailable: 0x20,
  deactivating: 0x10,
  transmitOverrun: 0x08,
  breakDetected: 0x04,
} as const;

export interface SolPacket {
  /** 1..15, or 0 for an ack-only packet */
  seq: number;
  /** sequence number being acknowledged (or nacked), 0 for none */
  ackSeq: number;
  acceptedChars: number;
  /** operation (console → BMC) or status (BMC → console) bits */
  flags: number;
  data: Buffer;
}

export function encodeSolPacket(p: SolPacket): Buffer {
  const head = Buffer.from([p.seq & 0x0f, p.ackSeq & 0x0f, p.acceptedChars & 0xff, p.flags & 0xff]);
  return p.data.length === 0 ? head : Buffer.concat([head, p.data]);
}

export function decodeSolPacket(b: Buffer): SolPacket {
  if (b.length < 4) throw new DecodeError(`SOL payload of ${b.length} bytes is shorter than its 4-byte header`);
  return { seq: b[0]! & 0x0f, ackSeq: b[1]! & 0x0f, acceptedChars: b[2]!, flags: b[3]!, data: Buffer.from(b.subarray(4)) };
}

export function nextSolSeq(seq: number): number {
  return seq >= 15 ? 1 : seq + 1;
}

/** Activate Payload request data for SOL: encryption and authentication as the session offers. */
export function encodeActivateSol(instance: number, encrypt: boolean, authenticate: boolean): Buffer {
  return Buffer.from([0x01, instance, (encrypt ? 0x80 : 0) | (authenticate ? 0x40 : 0) | 0x02, 0, 0, 0]);
}

export interface SolActivation {
  inboundPayloadSize: number;
  outboundPayloadSize: number;
  port: number;
}

export function decodeActivateSolResponse(d: Buffer): SolActivation {
  if (d.length < 10) throw new DecodeError(`Activate Payload answer of ${d.length} bytes is shorter than 10`);
  return { inboundPayloadSize: d.readUInt16LE(4), outboundPayloadSize: d.readUInt16LE(6), port: d.readUInt16LE(8) };
}
