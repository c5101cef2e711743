/**
 * How a worker thread that talks IPMI ends (console and report workers). A worker must not be
 * ended while one of its UDP sockets can still receive: Node 20 aborts the whole process when a
 * datagram arrives during the worker's termination ("FATAL ERROR: v8::FromJust Maybe value is
 * Nothing" in UDPWrap::OnRecv → AddressToJS). So every way out closes the sockets first: a
 * graceful shutdown after the sessions' Close Session, a crash (an uncaught error, or the pool's
 * `die`) at once, and only then does the thread end.
 */
import { closeAllSessions } from '../ipmi/session.js';
import { defaultUdpPool } from '../ipmi/transport.js';

export interface WorkerExit {
  /** after a graceful shutdown: Close Session to every BMC, then the sockets */
  afterShutdown(): Promise<void>;
  /** end at once, as a crash would: sockets closed, exit code 1 */
  die(): void;
}

/** Installs the worker's last-resort handler (sockets closed, then the error ends the worker as one) and returns its ways out. */
export function guardWorkerExit(): WorkerExit {
  const closeSockets = () => {
    try {
      defaultUdpPool().close();
    } catch {
      // already closed
    }
  };
  // an uncaught error still ends the worker as one (the pool logs it from the Worker's 'error'),
  // only with its sockets closed first
  const onUncaught = (err: Error) => {
    closeSockets();
    process.off('uncaughtException', onUncaught);
    process.nextTick(() => {
      throw err;
    });
  };
  process.on('uncaughtException', onUncaught);
  return {
    afterShutdown: async () => {
      await closeAllSessions();
      closeSockets();
    },
    die: () => {
      closeSockets();
      process.exit(1);
    },
  };
}
