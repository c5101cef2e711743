/** Tests use the lab's throw-away PKI. */
import type { Pki } from '../../src/lab/pki.js';

export { createPki, issueClientCert, revokeClientCerts, type Pki } from '../../src/lab/pki.js';

/** Console listeners on loopback, on ports the system picks, with the test PKI's server certificate and CA. */
export function loopbackConsoleListeners(pki: Pick<Pki, 'ca' | 'serverCert' | 'serverKey'>) {
  return { host: '127.0.0.1', port: 0, wsPort: 0, caCertFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey };
}
