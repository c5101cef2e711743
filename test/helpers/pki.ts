/** Tests use the lab's throw-away PKI. */
export { createPki, issueClientCert, revokeClientCerts, type Pki } from '../../src/lab/pki.js';
