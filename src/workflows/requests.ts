/**
 * The lean workflow bundle of the request queue (REQUEST_QUEUE): only `inferenceRequest`. Every
 * workflow execution evaluates its bundle's modules afresh, so a request must not pay for the
 * other workflows' modules (the discovery cycles' signature libraries above all). index.ts still
 * exports it too, for requests started on the control-plane queue before this bundle existed
 * and for history replay.
 */
export { inferenceRequest } from './inferenceRequest.js';
