/**
 * multipart/form-data for Redfish `MultipartHttpPushUri`: an `UpdateParameters` JSON part, the
 * vendor's own JSON parts (DSP0266 12.6.2.2: named `Oem...`, e.g. AMI MegaRAC's `OemParameters`)
 * and an `UpdateFile` part whose bytes are streamed from an async iterable, never held whole.
 */
import { randomBytes } from 'node:crypto';

export interface MultipartFrame {
  boundary: string;
  contentType: string;
  /** Everything before the file bytes. */
  head: Buffer;
  /** Everything after the file bytes. */
  tail: Buffer;
}

/** A file name safe inside a quoted header parameter. */
export function safeFilename(name: string): string {
  const cleaned = name.replace(/[^\w.-]/g, '_').slice(0, 100);
  return cleaned === '' || /^\.+$/.test(cleaned) ? 'firmware.bin' : cleaned;
}

export interface FrameOptions {
  /** default: random */
  boundary?: string;
  /** JSON parts after UpdateParameters, by part name; each name starts with `Oem` (DSP0266 12.6.2.2) */
  oemParts?: Readonly<Record<string, unknown>>;
}

function jsonPart(boundary: string, name: string, value: unknown): string {
  return `--${boundary}\r\n` + `Content-Disposition: form-data; name="${name}"\r\n` + 'Content-Type: application/json\r\n\r\n' + `${JSON.stringify(value)}\r\n`;
}

export function multipartFrame(parameters: unknown, filename: string, options: FrameOptions = {}): MultipartFrame {
  const boundary = options.boundary ?? `metal-bmc-${randomBytes(16).toString('hex')}`;
  const oem = Object.entries(options.oemParts ?? {});
  for (const [name] of oem) if (!/^Oem\w*$/.test(name)) throw new TypeError(`a vendor's multipart part is named Oem..., not ${JSON.stringify(name)}`);
  const head =
    jsonPart(boundary, 'UpdateParameters', parameters) +
    oem.map(([name, value]) => jsonPart(boundary, name, value)).join('') +
    `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="UpdateFile"; filename="${safeFilename(filename)}"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n';
  return {
    boundary,
    contentType: `multipart/form-data; boundary=${boundary}`,
    head: Buffer.from(head, 'utf8'),
    tail: Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8'),
  };
}

/** Total body length when the file length is known. */
export function multipartLength(frame: MultipartFrame, fileLength: number): number {
  return frame.head.length + fileLength + frame.tail.length;
}

/**
 * The body as an async generator: head, file chunks as they arrive (pulled only when the
 * consumer asks, so backpressure reaches the download), tail. `onChunk` sees file bytes.
 */
export async function* multipartBody(frame: MultipartFrame, file: AsyncIterable<Uint8Array>, onChunk?: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  yield frame.head;
  for await (const chunk of file) {
    onChunk?.(chunk.length);
    yield chunk;
  }
  yield frame.tail;
}
