/**
 * Serial console over SSH to the BMC, for vendors whose host console is an SSH command
 * (Dell iDRAC: `console com2`). The returned Duplex is the serial line; ending it closes SSH.
 */
import { Duplex } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { abortError, BmcError } from '../errors.js';

export interface SshConsoleOptions {
  host: string;
  port?: number;
  user: string;
  password: string;
  command: string;
  readyTimeoutMs?: number;
  signal?: AbortSignal;
  /** pin the BMC's host key (hex SHA-256 of the key) when known */
  hostKeySha256?: string;
  /** decides on the host key (hex SHA-256) before any credential is sent (trust on first use); false refuses with UNTRUSTED */
  checkHostKey?: (sha256: string) => boolean;
  /** a byte never sent to the BMC: its console command's "leave" key (vendors.ts sshConsoleDetachByte) */
  dropInputByte?: number;
}

/** `chunk` without `byte` (the same Buffer when it holds none). */
export function withoutByte(chunk: Buffer, byte: number | undefined): Buffer {
  if (byte === undefined || !chunk.includes(byte)) return chunk;
  return Buffer.from(chunk.filter((b) => b !== byte));
}

export function openSshConsole(o: SshConsoleOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const where = `${o.host}:${o.port ?? 22}`;
    let settled = false;
    let refusedKey: string | undefined;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    const onAbort = () => fail(abortError(o.signal!, `SSH console to BMC ${where}`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    client.on('error', (err: Error & { level?: string }) => {
      const auth = err.level === 'client-authentication';
      if (refusedKey !== undefined) {
        fail(new BmcError('UNTRUSTED', `SSH console to BMC ${where}: host key sha256 ${refusedKey.slice(0, 16)}… is not the recorded one; password not sent`, { cause: err }));
        return;
      }
      fail(new BmcError(auth ? 'AUTH_FAILED' : 'CLOSED', auth ? `SSH console to BMC ${where}: wrong user name or password` : `SSH console to BMC ${where}: ${err.message}`, { cause: err }));
    });
    client.on('ready', () => {
      client.exec(o.command, { pty: { term: 'vt100', cols: 80, rows: 40 } }, (err, channel: ClientChannel) => {
        o.signal?.removeEventListener('abort', onAbort);
        if (err) return fail(new BmcError('PROTOCOL', `SSH console to BMC ${where}: ${o.command} refused: ${err.message}`, { cause: err }));
        settled = true;
        const line = new Duplex({
          read() {
            channel.resume();
          },
          write(chunk: Buffer, _enc, cb) {
            const kept = withoutByte(chunk, o.dropInputByte);
            if (kept.length === 0) return cb();
            channel.write(kept, cb);
          },
          final(cb) {
            channel.end();
            client.end();
            cb();
          },
          destroy(error, cb) {
            channel.destroy();
            client.end();
            cb(error);
          },
        });
        channel.on('data', (d: Buffer) => {
          if (!line.push(d)) channel.pause();
        });
        channel.on('close', () => {
          line.push(null);
          client.end();
        });
        resolve(line);
      });
    });
    client.connect({
      host: o.host,
      port: o.port ?? 22,
      username: o.user,
      password: o.password,
      readyTimeout: o.readyTimeoutMs ?? 10_000,
      ...(o.hostKeySha256 || o.checkHostKey
        ? {
            hostHash: 'sha256',
            hostVerifier: (hash: string) => {
              const ok = (o.hostKeySha256 === undefined || hash === o.hostKeySha256) && (o.checkHostKey?.(hash) ?? true);
              if (!ok) refusedKey = hash;
              return ok;
            },
          }
        : {}),
    });
  });
}
