export { connectBus, type BusConnection, type BusTls, type ConnectBusOptions } from './connection.js';
export { consumerConfigFor, ensureConsumer, ensureStream, MAX_DELIVER, sanitizeName, streamNameFor } from './jetstream.js';
export { defaultDurableName, subscribeMachineEvents, type Disposition, type EventMeta, type MachineEventSubscription, type SubscribeOptions } from './machine-events.js';
export { publishResult } from './results.js';
