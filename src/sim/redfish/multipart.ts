/**
 * An incremental multipart/form-data reader that counts each part's bytes instead of
 * keeping them: a firmware image pushed to MultipartHttpPushUri is never buffered whole.
 * Only small parts chosen by `keep` (UpdateParameters) are collected, up to `keepLimit`.
 * Pure: fed with chunks split anywhere, it yields the same parts.
 */
import { DecodeError } from '../../errors.js';

export interface MultipartPart {
  /** form field name */
  name: string;
  filename?: string;
  contentType?: string;
  /** size of the part's body */
  bytes: number;
  /** the body as text, for kept parts */
  text?: string;
}

export interface MultipartReader {
  write(chunk: Buffer): void;
  /** The parts; throws DecodeError when the closing boundary never came. */
  end(): MultipartPart[];
}

const HEADER_LIMIT = 16 * 1024;

/** The boundary of a `multipart/form-data; boundary=…` Content-Type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

function parseHeaders(text: string): Omit<MultipartPart, 'bytes'> {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get('content-disposition') ?? '';
  const param = (key: string): string | undefined => new RegExp(`;\\s*${key}="([^"]*)"`, 'i').exec(disposition)?.[1];
  const name = param('name');
  if (!/^form-data\b/i.test(disposition) || name === undefined) throw new DecodeError('multipart part without Content-Disposition: form-data; name=…');
  const part: Omit<MultipartPart, 'bytes'> = { name };
  const filename = param('filename');
  if (filename !== undefined) part.filename = filename;
  const contentType = headers.get('content-type');
  if (contentType !== undefined) part.contentType = contentType;
  return part;
}

type Phase = 'preamble' | 'afterBoundary' | 'headers' | 'body' | 'done';

export function multipartReader(boundary: string, keep: (part: Omit<MultipartPart, 'bytes'>) => boolean, keepLimit = 64 * 1024): MultipartReader {
  // The stream is read as if it started with CRLF, so every delimiter is CRLF "--" boundary.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const parts: MultipartPart[] = [];
  let phase: Phase = 'preamble';
  let pending: Buffer = Buffer.from('\r\n');
  let current: MultipartPart | undefined;
  let kept: Buffer[] | undefined;

  const take = (data: Buffer): void => {
    if (current === undefined || data.length === 0) return;
    current.bytes += data.length;
    if (kept !== undefined) {
      if (current.bytes > keepLimit) throw new DecodeError(`multipart part ${current.name} is larger than ${keepLimit} bytes`);
      kept.push(Buffer.from(data));
    }
  };

  const finishPart = (): void => {
    if (current === undefined) return;
    if (kept !== undefined) current.text = Buffer.concat(kept).toString('utf8');
    parts.push(current);
    current = undefined;
    kept = undefined;
  };

  /** Advances as far as `pending` allows; returns false when more input is needed. */
  const step = (): boolean => {
    switch (phase) {
      case 'preamble':
      case 'body': {
        const at = pending.indexOf(delimiter);
        if (at < 0) {
          const safe = Math.max(0, pending.length - (delimiter.length - 1));
          if (phase === 'body') take(pending.subarray(0, safe));
          pending = pending.subarray(safe);
          return false;
        }
        if (phase === 'body') take(pending.subarray(0, at));
        finishPart();
        pending = pending.subarray(at + delimiter.length);
        phase = 'afterBoundary';
        return true;
      }
      case 'afterBoundary': {
        if (pending.length < 2) return false;
        const two = pending.subarray(0, 2).toString('latin1');
        if (two === '--') {
          phase = 'done';
          pending = Buffer.alloc(0);
          return false;
        }
        const eol = pending.indexOf('\r\n');
        if (eol < 0) {
          if (pending.length > 256) throw new DecodeError('multipart boundary line too long');
          return false;
        }
        if (pending.subarray(0, eol).toString('latin1').trim() !== '') throw new DecodeError('multipart boundary followed by garbage');
        pending = pending.subarray(eol + 2);
        phase = 'headers';
        return true;
      }
      case 'headers': {
        const end = pending.indexOf('\r\n\r\n');
        const blank = pending.subarray(0, 2).toString('latin1') === '\r\n';
        if (end < 0 && !blank) {
          if (pending.length > HEADER_LIMIT) throw new DecodeError(`multipart part headers longer than ${HEADER_LIMIT} bytes`);
          return false;
        }
        const headerEnd = blank ? 0 : end;
        const info = parseHeaders(pending.subarray(0, headerEnd).toString('utf8'));
        current = { ...info, bytes: 0 };
        kept = keep(info) ? [] : undefined;
        pending = pending.subarray(headerEnd + (blank ? 2 : 4));
        phase = 'body';
        return true;
      }
      case 'done':
        pending = Buffer.alloc(0);
        return false;
    }
  };

  return {
    write(chunk: Buffer): void {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (step());
    },
    end(): MultipartPart[] {
      if (phase !== 'done') throw new DecodeError('multipart body ends before its closing boundary');
      return parts;
    },
  };
}
