/**
 * RMCP framing (DMTF ASF 2.0, IPMI 2.0 section 13.1): the 4-byte header every datagram
 * on port 623 starts with, and the ASF presence ping / pong.
 */
import { DecodeError } from '../errors.js';

export const RMCP_VERSION = 0x06;
export const RMCP_CLASS_ASF = 0x06;
export const RMCP_CLASS_IPMI = 0x07;
/** Sequence number 0xff: "do not send an RMCP ACK", as IPMI requires. */
export const RMCP_SEQ_NO_ACK = 0xff;
const ASF_IANA = 4542;
const ASF_PRESENCE_PING = 0x80;
const ASF_PRESENCE_PONG = 0x40;

export function rmcpHeader(messageClass: number): Buffer {
  return Buffer.from([RMCP_VERSION, 0, RMCP_SEQ_NO_ACK, messageClass]);
}

export interface RmcpFrame {
  messageClass: number;
  body: Buffer;
}

export function decodeRmcp(datagram: Buffer): RmcpFrame {
  if (datagram.length < 4) throw new DecodeError(`datagram of ${datagram.length} bytes is shorter than an RMCP header`);
  if (datagram[0] !== RMCP_VERSION) throw new DecodeError(`RMCP version 0x${datagram[0]!.toString(16)} is not 0x06`);
  return { messageClass: datagram[3]! & 0x1f, body: datagram.subarray(4) };
}

export function encodePresencePing(tag: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(ASF_IANA, 0);
  body[4] = ASF_PRESENCE_PING;
  body[5] = tag & 0xff;
  body[6] = 0;
  body[7] = 0;
  return Buffer.concat([rmcpHeader(RMCP_CLASS_ASF), body]);
}

export interface PresencePong {
  tag: number;
  ipmiSupported: boolean;
}

export function decodePresencePong(datagram: Buffer): PresencePong {
  const { messageClass, body } = decodeRmcp(datagram);
  if (messageClass !== RMCP_CLASS_ASF) throw new DecodeError(`RMCP class ${messageClass} is not ASF`);
  if (body.length < 8) throw new DecodeError('ASF message is truncated');
  if (body.readUInt32BE(0) !== ASF_IANA || body[4] !== ASF_PRESENCE_PONG) throw new DecodeError('ASF message is not a presence pong');
  const dataLength = body[7]!;
  if (body.length < 8 + dataLength || dataLength < 10) throw new DecodeError('ASF presence pong data is truncated');
  return { tag: body[5]!, ipmiSupported: (body[8 + 8]! & 0x80) !== 0 };
}

export function isPresencePing(datagram: Buffer): boolean {
  return datagram.length >= 12 && datagram[3] === RMCP_CLASS_ASF && datagram.readUInt32BE(4) === ASF_IANA && datagram[8] === ASF_PRESENCE_PING;
}

export function encodePresencePong(tag: number): Buffer {
  const body = Buffer.alloc(8 + 16);
  body.writeUInt32BE(ASF_IANA, 0);
  body[4] = ASF_PRESENCE_PONG;
  body[5] = tag & 0xff;
  body[7] = 16;
  body.writeUInt32BE(ASF_IANA, 8); // IANA enterprise number of the responder
  body[16] = 0x81; // supported entities: IPMI supported, ASF 1.0
  return Buffer.concat([rmcpHeader(RMCP_CLASS_ASF), body]);
}
