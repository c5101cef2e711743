/**
 * The Redfish sessions of one simulated BMC: bounded in number, expiring after the idle
 * timeout (checked lazily, no timers), found by id (DELETE) or by token (X-Auth-Token).
 */
import { randomBytes } from 'node:crypto';

export interface SimSession {
  id: string;
  token: string;
  user: string;
  lastUsed: number;
}

export class SessionStore {
  private readonly byId = new Map<string, SimSession>();
  private readonly byToken = new Map<string, SimSession>();
  private next = 1;

  constructor(
    private readonly max: number,
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new session, or undefined when every slot is taken. */
  create(user: string): SimSession | undefined {
    this.expire();
    if (this.byId.size >= this.max) return undefined;
    const session = { id: String(this.next++), token: randomBytes(16).toString('hex'), user, lastUsed: this.now() };
    this.byId.set(session.id, session);
    this.byToken.set(session.token, session);
    return session;
  }

  /** The live session with this token, marked as used now. */
  authenticate(token: string): SimSession | undefined {
    const session = this.byToken.get(token);
    if (session === undefined) return undefined;
    if (this.expired(session)) {
      this.delete(session.id);
      return undefined;
    }
    session.lastUsed = this.now();
    return session;
  }

  get(id: string): SimSession | undefined {
    this.expire();
    return this.byId.get(id);
  }

  delete(id: string): boolean {
    const session = this.byId.get(id);
    if (session === undefined) return false;
    this.byId.delete(id);
    this.byToken.delete(session.token);
    return true;
  }

  list(): SimSession[] {
    this.expire();
    return [...this.byId.values()];
  }

  get size(): number {
    this.expire();
    return this.byId.size;
  }

  private expired(session: SimSession): boolean {
    return this.now() - session.lastUsed > this.timeoutMs;
  }

  private expire(): void {
    for (const session of this.byId.values()) if (this.expired(session)) this.delete(session.id);
  }
}
