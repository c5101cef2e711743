/**
 * HTTP plumbing of the simulated Redfish service: replies, Redfish error bodies
 * (Base.1.8 message registry), JSON request bodies, ETags.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Message ids of the Base registry the simulator answers with, and their resolutions. */
const RESOLUTIONS = {
  GeneralError: 'None.',
  NoValidSession: 'Establish a session before attempting any operations.',
  AccessDenied: 'Attempt to ensure that the URI is correct and that the service has the appropriate credentials.',
  ResourceNotFound: 'Provide a valid resource identifier and resubmit the request.',
  ResourceMissingAtURI: 'Place a valid resource at the URI or correct the URI and resubmit the request.',
  OperationNotAllowed: 'None.',
  MalformedJSON: 'Ensure that the request body is valid JSON and resubmit the request.',
  PropertyUnknown: 'Remove the unknown property from the request body and resubmit the request if the operation failed.',
  PropertyNotWritable: 'Remove the property from the request body and resubmit the request if the operation failed.',
  PropertyValueNotInList: 'Choose a value from the enumeration list that the implementation can support and resubmit the request.',
  PropertyValueTypeError: 'Correct the value for the property in the request body and resubmit the request.',
  ActionParameterMissing: 'Supply the action with the required parameter in the request body when the request is resubmitted.',
  ActionParameterNotSupported: 'Remove the parameter supplied and resubmit the request if the operation failed.',
  ActionParameterValueNotInList: 'Choose a value from the enumeration list that the implementation can support and resubmit the request.',
  PreconditionFailed: 'Try the operation again using the appropriate ETag.',
  PreconditionRequired: 'Try the operation again using an If-Match or If-None-Match header and appropriate ETag.',
  SessionLimitExceeded: 'Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions, if supported.',
  ServiceTemporarilyUnavailable: 'Wait for the indicated retry duration and retry the operation.',
  UnsupportedMediaType: 'Resubmit the request with an appropriate Content-Type header.',
  InternalError: 'Resubmit the request. If the problem persists, consider resetting the service.',
} as const satisfies Record<string, string>;

export type MessageId = keyof typeof RESOLUTIONS;

/** `{"error":{"code":"Base.1.8.GeneralError","message":…,"@Message.ExtendedInfo":[…]}}` */
export function errorBody(messageId: MessageId, message: string, args: readonly string[] = []): unknown {
  return {
    error: {
      code: 'Base.1.8.GeneralError',
      message,
      '@Message.ExtendedInfo': [
        {
          '@odata.type': '#Message.v1_1_1.Message',
          MessageId: `Base.1.8.${messageId}`,
          Message: message,
          MessageArgs: [...args],
          MessageSeverity: 'Critical',
          Severity: 'Critical',
          Resolution: RESOLUTIONS[messageId],
        },
      ],
    },
  };
}

export function errorReply(status: number, messageId: MessageId, message: string, args: readonly string[] = []): Reply {
  return { status, body: errorBody(messageId, message, args) };
}

/** 404 ResourceNotFound, as a BMC answers a path it does not serve. */
export const notFound = (): Reply => errorReply(404, 'ResourceNotFound', 'The requested resource was not found.');

/** Thrown by handlers to answer with a Redfish error. */
export class RedfishFault extends Error {
  readonly reply: Reply;
  constructor(status: number, messageId: MessageId, message: string, args: readonly string[] = []) {
    super(message);
    this.name = 'RedfishFault';
    this.reply = errorReply(status, messageId, message, args);
  }
}

/** How the bytes go out beyond the reply (the wire quirks of src/sim/redfish/quirks.ts). */
export interface SendShape {
  /** a UTF-8 byte-order mark before a JSON body */
  bom?: boolean;
  /** bytes after a JSON body, counted in Content-Length */
  trailing?: string;
  /** Connection: close, and the connection closed after the answer */
  close?: boolean;
}

export function send(res: ServerResponse, reply: Reply, shape: SendShape = {}): void {
  if (res.headersSent || res.destroyed) return;
  const json = reply.body === undefined ? '' : JSON.stringify(reply.body);
  const text = json === '' ? '' : `${shape.bom === true ? '\uFEFF' : ''}${json}${shape.trailing ?? ''}`;
  res.statusCode = reply.status;
  res.setHeader('OData-Version', '4.0');
  res.setHeader('Cache-Control', 'no-cache');
  if (text !== '') {
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(text));
  }
  if (shape.close === true) res.setHeader('Connection', 'close');
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  res.end(text);
}

/** The request body as JSON (at most `limit` bytes); 400 MalformedJSON otherwise. */
export async function readJson(req: IncomingMessage, limit = 1 << 20): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Read to the end even past the limit: leaving the loop early would destroy the socket.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw new RedfishFault(413, 'GeneralError', `request body larger than ${limit} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new RedfishFault(400, 'MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.');
  }
}

/** A strong ETag over a resource's JSON (without its own @odata.etag). */
export function etagOf(body: Record<string, unknown>): string {
  const { '@odata.etag': _ignored, ...rest } = body;
  return `"${createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16)}"`;
}

/** A plain JSON object, else 400. */
export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RedfishFault(400, 'PropertyValueTypeError', `${what} must be a JSON object`, [what]);
  }
  return value as Record<string, unknown>;
}
