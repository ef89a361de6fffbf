/**
 * GET /v1/signature/:requestId: the signature over a verifiable model's response, to check
 * offline (`fleet verify`). Both kinds sign the same text, `<model>:<sha256 req>:<sha256 resp>`
 * (src/domain/teeSignatures.ts), so one verifier checks either: `signature_kind: host` — our
 * host's Ed25519 identity key over (build sha256, the client's request body, the response
 * text); `provider_tee` — the attested provider backend's key (the signing address its report
 * bound to the pinned TLS fingerprint) over the exchange it had with the gateway.
 *
 * Who may read it: the account whose key made the request, or an operator with the admin
 * token; a signature of an anonymous request is readable by anyone (there is no account to
 * protect). Anyone else gets the same 404 as for an unknown id, so ids cannot be probed. The
 * route has its own credential check (mounted before the /v1 key middleware) because the
 * admin token is no API key.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { readResponseSignature } from '../../db/signaturesRepo.js';
import { tokensEqual } from '../apiKey.js';
import { bearerOf, type Principal } from '../auth.js';
import { ApiError } from '../errors.js';
import type { ApiDeps } from '../callExecutor.js';

export function signatureRoutes(deps: ApiDeps & { adminToken: string | undefined }): Router {
  const r = Router();
  const notFound = (id: string) =>
    new ApiError(404, `No signature for request '${id}' (unknown, not yours, or its model is not verifiable).`, 'invalid_request_error', 'signature_not_found', 'request_id');

  r.get('/v1/signature/:requestId', async (req: Request, res: Response, _next: NextFunction) => {
    const id = String(req.params.requestId);
    const presented = bearerOf(req);
    const admin = presented !== undefined && deps.adminToken !== undefined && tokensEqual(presented, deps.adminToken);
    const principal: Principal | null = !admin && presented ? await deps.keys.resolve(presented) : null;
    if (!admin && !principal && deps.requireAuth) {
      throw new ApiError(401, presented ? 'Incorrect API key provided.' : 'You didn\'t provide an API key.', 'invalid_request_error', 'invalid_api_key');
    }
    const s = await readResponseSignature(deps.db, id);
    if (!s) throw notFound(id);
    if (!admin && s.accountId !== null && s.accountId !== principal?.accountId) throw notFound(id);
    const common = { request_id: s.requestId, model: s.modelId, text: s.signature.text, signature: s.signature.signature, signing_address: s.signature.signingAddress };
    if (s.kind === 'provider_tee') {
      const t = s.signature;
      res.json({ ...common, signature_kind: 'provider_tee', signing_algo: t.signingAlgo, tls_cert_fingerprint: t.tlsFingerprint, upstream_id: t.upstreamId });
      return;
    }
    res.json({ ...common, signature_kind: 'host', signing_algo: 'ed25519', fingerprint: s.signature.fingerprint });
  });
  return r;
}
