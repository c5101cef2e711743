/**
 * The metal-console listener: SSH inside mutual TLS, as the Go metal-bmc serves it.
 *
 * Authentication: TLS 1.3 only, and the client must present a certificate that chains to the
 * console CA (`requestCert` + `rejectUnauthorized`); a handshake without one, or with one from
 * another CA, fails before any byte of SSH. Inside, SSH auth method `none` is accepted, because
 * the certificate is the authentication; the SSH user name is the machine id. The certificate
 * subject is the client's identity in logs and keyboard notices. With a CRL, revoked certificates
 * fail the handshake, and a reloaded CRL ends the connections of the certificates it revokes:
 * each open console gets one line on stderr and exit status 1, then the SSH connection is
 * disconnected (counted as refused, `revoked`). Authorisation: `mayOpen()` (access.ts) for the
 * certificate and the machine id; a certificate that may not open the machine gets one line on
 * stderr and exit status 1, and the BMC is never contacted.
 *
 * Bounds: the TLS handshake must finish within `handshakeTimeoutMs` (else it is closed and
 * counted as refused, `tls-handshake`, as any failed handshake), and the SSH login within the
 * same time after it (else `handshake-timeout`); open connections are capped per source address
 * and in total (counted before TLS).
 *
 * Wiring: node:tls accepts and verifies; each verified TLS socket is handed to one shared
 * ssh2 `Server` through its public `injectSocket()`, which runs the SSH server protocol over
 * any duplex socket. ssh2 reports the connection with the socket's remote address and port,
 * by which the TLS identity is looked up. The SSH host key is derived from the TLS key file.
 *
 * Sessions: pty (any size; SOL has none), then shell or exec (the command is ignored, except
 * `takeover`, which takes the keyboard on joining); a "break" request (RFC 4335, OpenSSH's `~B`)
 * sends a serial break from the keyboard holder. Output goes to stdout; notices (keyboard,
 * BMC disconnects) and errors go to stderr as one line each. When the console cannot be
 * opened (unknown machine, no BMC data, BMC unreachable, wrong BMC password) the session gets
 * one line on stderr and exit status 1, then closes.
 */
import { terminalSafe } from '../terminal-text.js';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel, Session } from 'ssh2';
import { checkDuration } from '../deadline.js';
import type { Logger } from '../log.js';
import { mayOpen, validMachineId, type AuthzRule, type Principal } from './access.js';
import type { ConsoleHub } from './hub.js';
import type { HostKey } from './host-key.js';
import { DEFAULT_CONNECTION_LIMITS, guardTlsListener, type ConnectionLimits, type ListenerRefusal } from './limits.js';
import { crlExpiredNote } from './crl-expiry.js';
import { trackCertifiedConnections } from './crl.js';
import { remoteOf } from './remote.js';
import { secureContextOptions, serverTlsOptions, verifiedPrincipal, type ConsoleTls } from './tls.js';
import type { ClientIdentity, ClientPort, ConsoleHandle, ConsoleNotice } from './types.js';
import { publicText } from '../net/public-text.js';

/** session channels one SSH connection may open (metal-console opens one; a multiplexing client a few) */
const MAX_SESSIONS_PER_CONNECTION = 4;
/**
 * How long the client has to answer metal-bmc's CHANNEL_CLOSE before its whole connection is
 * dropped, and how long the output an ended channel still holds may sit without any of it going
 * out before the channel is closed without it. OpenSSH and ssh2 answer at once; a channel still
 * open on the client's side kept its place among the connection's sessions (and what ssh2
 * buffered for it) for as long as the connection lived, keepalives answered.
 */
const CLOSE_ANSWER_MS = 30_000;

/** How a session channel metal-bmc ends reaches its close: the client is waited for once metal-bmc's CHANNEL_CLOSE went out. */
interface ChannelEnds {
  /** metal-bmc's CHANNEL_CLOSE went out: the client has CLOSE_ANSWER_MS to answer it */
  closeSent(): void;
  /** how long an ended channel's output may not move before it is given up and the channel closed */
  drainMs: number;
}

/**
 * Ends a channel's output, then its close. ssh2 sends EOF and CHANNEL_CLOSE once the output
 * written before `end()` went out ('prefinish'), which waits for the client's window: a client
 * that keeps the window shut (a paused terminal, a pipe into a pager) gets its output as long as
 * some of it moves every `drainMs`; past that the channel is closed without the rest
 * (`close()` sends CHANNEL_CLOSE at once). `ends.closeSent` is told when the close went out.
 */
function endThenClose(channel: ServerChannel, ends: ChannelEnds): void {
  const unsent = () => channel.writableLength + channel.stderr.writableLength;
  let left = unsent();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(check, ends.drainMs);
    timer.unref();
  };
  const sent = () => {
    clearTimeout(timer);
    channel.off('close', gone);
    ends.closeSent();
  };
  const gone = () => {
    clearTimeout(timer);
    channel.off('finish', sent);
  };
  const check = () => {
    const now = unsent();
    if (now < left) {
      left = now;
      return arm();
    }
    channel.off('finish', sent);
    channel.off('close', gone);
    try {
      channel.close();
    } catch {
      // the connection went meanwhile
    }
    ends.closeSent();
  };
  channel.once('finish', sent);
  channel.once('close', gone);
  channel.end();
  arm();
}

export interface SshConsoleServerOptions {
  tls: ConsoleTls;
  hostKey: HostKey;
  hub: ConsoleHub;
  logger: Logger;
  /** 0 picks a free port */
  port: number;
  host?: string;
  /** the TLS handshake must finish within this, and the SSH login within this after it; default 20 s */
  handshakeTimeoutMs?: number;
  /** who may open which machine, default every certificate every machine */
  authz?: readonly AuthzRule[];
  /** default 32 per source address, 1024 in total */
  connectionLimits?: ConnectionLimits;
  /** a refusal, for the metrics */
  onRefused?: (reason: 'forbidden' | ListenerRefusal | 'handshake-timeout' | 'revoked' | 'too-many-sessions' | 'close-unanswered') => void;
  /** SSH keepalive: interval and unanswered probes before the peer is dropped; default 15 s, 3 */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** how long a channel metal-bmc ended may wait for the client's close before the connection is dropped; default 30 s */
  closeAnswerMs?: number;
}

export interface SshConsoleServer {
  readonly port: number;
  /** stop accepting connections (the sessions themselves end through the hub) */
  stopAccepting(): void;
  /** new TLS material (a reloaded CRL) for new connections; open connections whose certificate it revokes are ended; returns how many */
  setTls(tls: ConsoleTls): number;
  /** end what is still connected (SSH disconnect, sockets destroyed after `graceMs`) and wait for the listener to close */
  disconnectAll(graceMs: number): Promise<void>;
}


/** the last line of each console open over a connection whose certificate a reloaded CRL revokes */
const REVOKED_LINE = 'console closed: your client certificate was revoked';

/** A verified TLS connection, from its handshake until it closes. */
interface VerifiedConnection {
  principal: Principal;
  subject: string;
  loginDeadline: NodeJS.Timeout;
  /** the SSH connection over it, once ssh2 reports it */
  ssh?: Connection;
  /** ends the connection at once, its TLS socket destroyed; false when it had ended already */
  drop(): boolean;
  /** the waits for the client's answer to a CHANNEL_CLOSE: they end with the connection */
  closeWaits: Set<NodeJS.Timeout>;
  /** closes one open console of the connection with a last line on its stderr; resolves once its channel closed */
  consoles: Set<(line: string) => Promise<void>>;
}


/** Notices become lines on stderr; a status without a message (nothing happened) is not shown. */
function noticeText(notice: ConsoleNotice): string | undefined {
  return notice.message;
}

/** Joins the hub for one session channel; returns where window changes go. */
/** What a session channel's requests after the shell reach: the terminal size, a break. */
interface ChannelControl {
  resize(cols: number, rows: number): void;
  /** false: not sent (not the keyboard holder, not connected yet, or the console cannot) */
  sendBreak(): boolean;
}

function bridge(channel: ServerChannel, machineId: string, identity: ClientIdentity, takeover: boolean, consoles: VerifiedConnection['consoles'], hub: ConsoleHub, log: Logger, ends: ChannelEnds): ChannelControl {
  let handle: ConsoleHandle | undefined;
  let ended = false;
  const abort = new AbortController();
  // the client may have ended the channel's streams before its 'close' comes (another channel of the
  // same connection leaving first tells this one): a write then throws out of the hub, ending the process
  const writable = (w: { writableEnded: boolean; destroyed: boolean }) => !ended && !w.writableEnded && !w.destroyed;
  const line = (text: string) => {
    if (writable(channel.stderr)) channel.stderr.write(`\r\n[metal-bmc] ${terminalSafe(text)}\r\n`);
  };
  /**
   * `abandon`: the client takes nothing (dropped as too slow): the channel is closed at once, not
   * ended. end() waits for what is buffered to go out, which it never does while the client opens
   * no window: the buffer and the session's place on the connection stayed for as long as the
   * connection did (keepalives answered). A last line would wait behind the same buffer, so none.
   */
  const finish = (status: number, message?: string, abandon = false) => {
    if (ended) return;
    if (message !== undefined && !abandon) line(message);
    const open = writable(channel);
    ended = true;
    if (!open) return;
    try {
      channel.exit(status);
      if (abandon) {
        channel.close();
        ends.closeSent();
      } else endThenClose(channel, ends);
    } catch {
      // the client closed it meanwhile
    }
  };
  const port: ClientPort = {
    identity,
    send: (data) => (writable(channel) ? channel.write(data) : true),
    notify: (notice) => {
      const text = noticeText(notice);
      if (text !== undefined) line(text);
    },
    // stdout and stderr share the channel's window: what waits for it on either counts
    unsentBytes: () => channel.writableLength + channel.stderr.writableLength,
    end: (reason) => finish(reason.error ? 1 : 0, `console closed: ${reason.message}`, reason.code === 'slow'),
  };
  const channelClosed = new Promise<void>((resolve) => channel.once('close', () => resolve()));
  // leaving the hub at once, not when the channel closes: not one more keystroke reaches the BMC
  const revoke = (text: string) => {
    finish(1, text);
    abort.abort();
    handle?.leave();
    return channelClosed;
  };
  consoles.add(revoke);
  channel.on('close', () => {
    ended = true;
    consoles.delete(revoke);
    abort.abort();
    handle?.leave();
  });
  channel.on('error', () => undefined);
  channel.stderr.on('error', () => undefined);
  channel.on('drain', () => handle?.drained());
  channel.on('data', (data: Buffer) => handle?.input(data));
  hub.join(machineId, port, { takeover, signal: abort.signal }).then(
    (h) => {
      if (ended) h.leave();
      else handle = h;
    },
    (err: unknown) => {
      log.info({ machineId, client: identity.subject, err }, 'console refused');
      finish(1, `console of machine ${machineId} unavailable: ${publicText((err as Error).message)}`);
    },
  );
  return { resize: (cols, rows) => handle?.resize(cols, rows), sendBreak: () => handle?.sendBreak() ?? false };
}

/** A session channel of a client that may not open the machine: one line, exit status 1. */
function refuseChannel(channel: ServerChannel, machineId: string, identity: ClientIdentity, ends: ChannelEnds): ChannelControl {
  channel.on('error', () => undefined);
  channel.stderr.write(`\r\n[metal-bmc] ${terminalSafe(`${identity.subject} may not open the console of machine ${machineId}`)}\r\n`);
  channel.exit(1);
  endThenClose(channel, ends);
  return { resize: () => undefined, sendBreak: () => false };
}

/** What ssh2 keeps of a connection, as far as breakRequestsHeard() needs it (ssh2 1.17's lib/server.js). */
interface Ssh2Internals {
  _protocol?: { _handlers?: Record<string, unknown>; channelSuccess?(id: number): void; channelFailure?(id: number): void };
  _chanMgr?: { get(id: number): unknown };
}
interface Ssh2SessionInternals {
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  _chanInfo?: { outgoing?: { id?: number } };
  _ending?: boolean;
}
type ChannelRequestHandler = (p: unknown, recipient: number, type: string, wantReply: boolean, data: unknown) => void;

/**
 * ssh2's server answers every channel request it does not know with failure and tells nobody,
 * RFC 4335's "break" among them. This wraps its channel request handler so that a session
 * channel gets a 'break' event (accept, reject, { length }) as it gets 'signal'; without a
 * listener the request is refused as before. false: this ssh2 keeps its handlers elsewhere, and
 * breaks stay refused (test/integration/console-ssh.test.ts catches such an upgrade).
 */
function breakRequestsHeard(client: Connection): boolean {
  const { _protocol: proto, _chanMgr: channels } = client as unknown as Ssh2Internals;
  const original = proto?._handlers?.CHANNEL_REQUEST;
  if (typeof original !== 'function' || !channels || typeof proto?.channelSuccess !== 'function' || typeof proto.channelFailure !== 'function') return false;
  const handlers = proto._handlers!;
  const passOn = original as ChannelRequestHandler;
  handlers.CHANNEL_REQUEST = ((p, recipient, type, wantReply, data) => {
    const session = type === 'break' ? (channels.get(recipient) as Partial<Ssh2SessionInternals> | undefined) : undefined;
    const id = session?._chanInfo?.outgoing?.id;
    if (!session || typeof session.emit !== 'function' || typeof id !== 'number' || session.listenerCount?.('break') === 0 || session._ending) return passOn(p, recipient, type, wantReply, data);
    let replied = false;
    const reply = (ok: boolean) => {
      if (replied || !wantReply || session._ending) return;
      replied = true;
      if (ok) proto.channelSuccess!(id);
      else proto.channelFailure!(id);
    };
    // uint32 break-length in milliseconds (SOL's break has no length)
    const length = Buffer.isBuffer(data) && data.length >= 4 ? data.readUInt32BE(0) : undefined;
    session.emit('break', () => reply(true), () => reply(false), { length });
  }) satisfies ChannelRequestHandler;
  return true;
}

/** `ends`: how the session's channel, once metal-bmc ends it, waits for the client's close */
function serveSession(session: Session, machineId: string, identity: ClientIdentity, allowed: boolean, consoles: VerifiedConnection['consoles'], hub: ConsoleHub, log: Logger, ends: ChannelEnds): void {
  let control: ChannelControl | undefined;
  const open = (channel: ServerChannel, takeover: boolean) => (allowed ? bridge(channel, machineId, identity, takeover, consoles, hub, log, ends) : refuseChannel(channel, machineId, identity, ends));
  const replyOk = (accept: unknown) => {
    if (typeof accept === 'function') (accept as () => void)();
  };
  session.on('pty', (accept, _reject, info) => {
    replyOk(accept);
    log.debug({ machineId, term: info.term, cols: info.cols, rows: info.rows }, 'console pty requested');
  });
  session.on('window-change', (accept, _reject, info) => {
    replyOk(accept);
    control?.resize(info.cols, info.rows);
  });
  session.on('env', (accept) => replyOk(accept));
  // A second shell or exec on a session that has its console is refused. ssh2 passes reject only
  // when the client wants a reply: calling an absent one threw inside ssh2, which closed the
  // client's whole SSH connection with all its consoles.
  session.on('shell', (accept, reject) => {
    if (control) return reject?.();
    control = open(accept(), false);
  });
  session.on('exec', (accept, reject, info) => {
    if (control) return reject?.();
    control = open(accept(), info.command.trim() === 'takeover');
  });
  // RFC 4335 break (breakRequestsHeard): from the keyboard holder to the serial line, answered
  // success when it went, failure when not (OpenSSH's ~B asks no answer)
  (session as unknown as { on(event: 'break', listener: (accept?: () => void, reject?: () => void) => void): void }).on('break', (accept, reject) => {
    if (control?.sendBreak()) accept?.();
    else reject?.();
  });
}

/** Ends a connection whose certificate was revoked: a last line in each open console, then the SSH disconnect (before the SSH login, the socket is closed). */
function disconnectRevoked(connection: VerifiedConnection, socket: TLSSocket): void {
  const { ssh } = connection;
  if (!ssh) return void socket.destroy();
  // The disconnect goes once the consoles' last line, exit status and close are out: sent at
  // once, it overtook them when console output had filled the client's window (their data waits
  // for a window adjust, the disconnect does not). crl.ts destroys the socket
  // REVOKED_CLOSE_GRACE_MS later in any case.
  void Promise.all([...connection.consoles].map((close) => close(REVOKED_LINE))).then(() => ssh.end());
}

export async function startSshConsoleServer(options: SshConsoleServerOptions): Promise<SshConsoleServer> {
  const { hub } = options;
  const log = options.logger.child({ module: 'console-ssh' });
  const handshakeTimeoutMs = checkDuration('startSshConsoleServer: handshakeTimeoutMs', options.handshakeTimeoutMs, 20_000, 600_000);
  const keepaliveIntervalMs = checkDuration('startSshConsoleServer: keepaliveIntervalMs', options.keepaliveIntervalMs, 15_000, 3600_000);
  const closeAnswerMs = checkDuration('startSshConsoleServer: closeAnswerMs', options.closeAnswerMs, CLOSE_ANSWER_MS, 3600_000);
  const rules = options.authz ?? [{ kind: 'any' }];
  const onRefused = options.onRefused ?? (() => undefined);
  /** remote address:port of a verified TLS socket → its certificate, the deadline of its SSH login, its consoles */
  const identities = new Map<string, VerifiedConnection>();
  const sockets = new Set<TLSSocket>();
  const connections = new Set<Connection>();
  const certified = trackCertifiedConnections(options.tls.revocations, ({ remote, subject, serial }) => {
    onRefused('revoked');
    log.warn({ remote, client: subject, serial, reason: 'revoked' }, 'console connection ended: client certificate revoked');
  });

  const ssh = new ssh2.Server(
    {
      hostKeys: [options.hostKey.privatePem],
      ident: 'metal-bmc',
      keepaliveInterval: keepaliveIntervalMs,
      keepaliveCountMax: options.keepaliveCountMax ?? 3,
    },
    (client, info) => {
      const remote = remoteOf({ remoteAddress: info.ip, remotePort: info.port });
      const verified = identities.get(remote);
      if (verified === undefined) {
        client.end();
        return;
      }
      const { subject } = verified;
      if (!breakRequestsHeard(client)) log.warn({ remote }, 'console SSH: this ssh2 version hides "break" requests from the server; breaks are refused');
      verified.ssh = client;
      connections.add(client);
      let machineId = '';
      client.on('error', (err) => log.debug({ remote, err }, 'console SSH connection error'));
      client.on('close', () => connections.delete(client));
      client.on('authentication', (ctx) => {
        const name = ctx.username;
        if (ctx.method !== 'none' || !validMachineId(name)) {
          ctx.reject(['none']);
          return;
        }
        machineId = name;
        ctx.accept();
      });
      client.on('ready', () => {
        clearTimeout(verified.loginDeadline);
        const identity: ClientIdentity = { subject, remote, transport: 'ssh' };
        const allowed = mayOpen(rules, verified.principal, machineId);
        if (allowed) log.debug({ remote, client: subject, machineId }, 'console SSH connection authenticated');
        else {
          onRefused('forbidden');
          log.info({ remote, client: subject, machineId, reason: 'forbidden' }, 'console request refused');
        }
        // a few consoles per SSH connection: more session channels would let one connection fill
        // the machine's viewer limit
        let sessions = 0;
        client.on('session', (accept, reject) => {
          if (sessions >= MAX_SESSIONS_PER_CONNECTION) {
            onRefused('too-many-sessions');
            log.info({ remote, client: subject, machineId, reason: 'too-many-sessions' }, `console session refused: at most ${MAX_SESSIONS_PER_CONNECTION} open per SSH connection`);
            return reject();
          }
          sessions++;
          const channel = accept();
          // open at once, not over the connection's life: a closed one frees its place
          let closeAnswered = false;
          /** the wait for the client's answer, once metal-bmc's CHANNEL_CLOSE went out */
          let wait: NodeJS.Timeout | undefined;
          channel.once('close', () => {
            closeAnswered = true;
            sessions--;
            if (wait === undefined) return;
            clearTimeout(wait);
            verified.closeWaits.delete(wait);
          });
          // a client that never answers metal-bmc's CHANNEL_CLOSE would keep the channel's place for good: its connection goes
          const closeSent = () => {
            if (closeAnswered || wait !== undefined) return;
            const timer = setTimeout(() => {
              verified.closeWaits.delete(timer);
              // the connection is dropped once, however many of its channels went unanswered
              if (!verified.drop()) return;
              onRefused('close-unanswered');
              log.info({ remote, client: subject, machineId, timeoutMs: closeAnswerMs, reason: 'close-unanswered' }, 'console connection closed: the client did not answer the close of a session channel metal-bmc ended');
            }, closeAnswerMs);
            timer.unref();
            verified.closeWaits.add(timer);
            wait = timer;
          };
          serveSession(channel, machineId, identity, allowed, verified.consoles, hub, log, { closeSent, drainMs: closeAnswerMs });
        });
      });
    },
  );

  const server: TlsServer = createTlsServer({ ...serverTlsOptions(options.tls, true), handshakeTimeout: handshakeTimeoutMs }, (socket) => {
    const verified = verifiedPrincipal(socket);
    if (verified === undefined) {
      socket.destroy();
      return;
    }
    const remote = remoteOf(socket);
    // The login deadline starts here and not at ssh2's 'connection': ssh2 reports that only once
    // the client's SSH identification line has arrived, which a silent client never sends.
    const loginDeadline = setTimeout(() => {
      onRefused('handshake-timeout');
      log.info({ remote, client: verified.subject, timeoutMs: handshakeTimeoutMs, reason: 'handshake-timeout' }, 'console connection closed: no SSH login within the handshake timeout');
      socket.destroy();
    }, handshakeTimeoutMs);
    loginDeadline.unref();
    const drop = () => {
      if (socket.destroyed) return false;
      socket.destroy();
      return true;
    };
    const connection: VerifiedConnection = { ...verified, loginDeadline, consoles: new Set(), drop, closeWaits: new Set() };
    identities.set(remote, connection);
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(loginDeadline);
      for (const wait of connection.closeWaits) clearTimeout(wait);
      connection.closeWaits.clear();
      identities.delete(remote);
      sockets.delete(socket);
    });
    if (certified.add(socket, verified.subject, () => disconnectRevoked(connection, socket))) ssh.injectSocket(socket);
  });
  /** the earliest nextUpdate of the CRL in force: a handshake refused past it is noted as such */
  let crlNextUpdate = options.tls.crlNextUpdate;
  guardTlsListener(server, options.connectionLimits ?? DEFAULT_CONNECTION_LIMITS, log, onRefused, () => crlExpiredNote(crlNextUpdate));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'console SSH listener error'));
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  log.info({ port, hostKey: options.hostKey.fingerprint, hostKeyType: options.hostKey.type }, 'console SSH-over-TLS listener started');

  return {
    port,
    stopAccepting() {
      closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
    },
    setTls(tls) {
      server.setSecureContext(secureContextOptions(tls));
      crlNextUpdate = tls.crlNextUpdate;
      return certified.applyRevocations(tls.revocations);
    },
    async disconnectAll(graceMs) {
      closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) c.end();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
