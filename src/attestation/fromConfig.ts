/**
 * The one place a QuoteVerifier is chosen from the config: DCAP in production; the software TEE
 * only when a deployment opted in (FLEET_ALLOW_SOFTWARE_TEE), with a warning at every start so
 * it is never on by accident.
 */
import type { Logger } from '../logger.js';
import { createDcapVerifier } from './dcapVerifier.js';
import { createSoftwareTeeVerifier, type QuoteVerifier, type QuoteVerifierConfig } from './quoteVerifier.js';

export function quoteVerifierFrom(cfg: QuoteVerifierConfig, log: Logger): QuoteVerifier {
  if (cfg.kind === 'software') {
    log.warn('the SOFTWARE TEE verifier is enabled (FLEET_ALLOW_SOFTWARE_TEE): attested providers are trusted on a test key, not hardware — tests and local development only');
    return createSoftwareTeeVerifier(cfg.publicKey);
  }
  return createDcapVerifier({ pccsUrl: cfg.pccsUrl, allowedTcbStatuses: cfg.allowedTcbStatuses, log });
}
