/** Tests take free ports from the shared helper. */
export { freeTcpPort, freeUdpPort } from '../../src/net/ports.js';
