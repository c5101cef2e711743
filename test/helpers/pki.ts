/** Tests use the lab's throw-away PKI. */
export { createPki, type Pki } from '../../src/lab/pki.js';
