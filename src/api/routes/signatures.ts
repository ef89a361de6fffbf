/**
 * GET /v1/signature/:requestId: the serving host's Ed25519 signature over a verifiable model's
 * response (request id, model build sha256, response sha256), with its key, to check offline
 * (`fleet verify`, or `verifyResponseSignature` in src/domain/attestation.ts).
 */
import { Router } from 'express';
import { readResponseSignature } from '../../db/signaturesRepo.js';
import { ApiError } from '../errors.js';
import type { ApiDeps } from '../inferenceCall.js';

export function signatureRoutes(deps: ApiDeps): Router {
  const r = Router();
  r.get('/v1/signature/:requestId', async (req, res) => {
    const s = await readResponseSignature(deps.db, req.params.requestId);
    if (!s) {
      throw new ApiError(404, `No signature for request '${req.params.requestId}' (unknown, or its model is not verifiable).`, 'invalid_request_error', 'signature_not_found', 'request_id');
    }
    res.json({
      request_id: s.requestId,
      model: s.modelId,
      signed: s.signed,
      fingerprint: s.fingerprint,
      public_key: s.publicKey,
      signature: s.signature,
      algorithm: 'ed25519',
    });
  });
  return r;
}
