/** The workflow bundle of the control-plane worker: every workflow it runs, exported here. */
export { coldLoad } from './coldLoad.js';
export { inferenceRequest } from './inferenceRequest.js';
export { sweepReservations } from './sweepReservations.js';
export { discoveryCycle } from './discoveryCycle.js';
export { poolReassign } from './poolReassign.js';
export { warmPools } from './warmPools.js';
export { providerRefresh } from './providerRefresh.js';
export { attestedDiscoveryCycle } from './attestedDiscoveryCycle.js';
export { modelUnload } from './modelUnload.js';
