/**
 * Operator endpoints: register a GGUF file in the catalog (its sha256 is recorded, so hosts
 * can refuse a file that differs) and list the hosts with their health and placements.
 */
import { Router } from 'express';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { readGgufFileInfo } from 'node-llama-cpp';
import { sha256File } from '../../activities/fileHash.js';
import { listHosts } from '../../db/hostsRepo.js';
import { listPlacements } from '../../db/placementsRepo.js';
import { registerModel } from '../../db/modelsRepo.js';
import { isHostHealthy, missedHeartbeats } from '../../domain/health.js';
import { invalidRequest } from '../errors.js';
import type { ApiDeps } from '../inferenceCall.js';
import { describeZodError, registerModelBody } from '../schemas.js';

export interface AdminDeps extends ApiDeps {
  modelsDir: string;
  heartbeatIntervalMs: number;
}

/** Reads the file's header: a GGUF file starts with the magic "GGUF". */
async function assertGguf(file: string): Promise<void> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw invalidRequest(`The model file cannot be opened (${code ?? 'error'}).`, 'path');
  }
  try {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(4), 0, 4, 0);
    if (bytesRead < 4 || buffer.toString('latin1') !== 'GGUF') throw invalidRequest('The file is not a GGUF model.', 'path');
  } finally {
    await fh.close();
  }
}

async function trainedContextLength(file: string): Promise<number | undefined> {
  const info = await readGgufFileInfo(file, { readTensorInfo: false });
  const arch = info.metadata.general?.architecture;
  const archMeta = arch ? (info.metadata as unknown as Record<string, { context_length?: unknown }>)[arch] : undefined;
  const n = archMeta?.context_length;
  return typeof n === 'number' && n > 0 ? n : undefined;
}

export function adminRoutes(deps: AdminDeps): Router {
  const r = Router();

  r.post('/admin/models', async (req, res) => {
    const parsed = registerModelBody.safeParse(req.body ?? {});
    if (!parsed.success) {
      const { message, param } = describeZodError(parsed.error);
      throw invalidRequest(message, param);
    }
    const body = parsed.data;
    const file = path.resolve(deps.modelsDir, body.path);
    await assertGguf(file);
    const trained = await trainedContextLength(file).catch(() => undefined);
    const contextLength = body.context_length ?? trained;
    if (!contextLength) throw invalidRequest('context_length is required: the file does not declare one.', 'context_length');
    if (trained && contextLength > trained) {
      throw invalidRequest(`context_length ${contextLength} exceeds the model's trained context (${trained}).`, 'context_length');
    }
    const { sha256, sizeBytes } = await sha256File(file);
    const row = await registerModel(deps.db, { id: body.id, path: file, sha256, sizeBytes, contextLength });
    deps.catalog.invalidate();
    deps.log.info({ model: row.id, sizeBytes }, 'model registered');
    res.status(201).json({
      id: row.id,
      object: 'model',
      path: row.path,
      sha256: row.sha256,
      size_bytes: Number(row.size_bytes),
      context_length: row.context_length,
    });
  });

  r.get('/admin/hosts', async (_req, res) => {
    const now = Date.now();
    const [hosts, placements] = await Promise.all([listHosts(deps.db), listPlacements(deps.db, {})]);
    res.json({
      object: 'list',
      data: hosts.map((h) => {
        const last = new Date(h.last_heartbeat_at).toISOString();
        return {
          id: h.id,
          task_queue: h.task_queue,
          status: h.status,
          healthy: isHostHealthy({ status: h.status, lastHeartbeatAt: last }, now, deps.heartbeatIntervalMs),
          missed_heartbeats: missedHeartbeats(last, now, deps.heartbeatIntervalMs),
          last_heartbeat_at: last,
          info: h.info,
          stats: h.stats,
          placements: placements
            .filter((p) => p.host_id === h.id)
            .map((p) => ({ model: p.model_id, state: p.state, progress: p.progress, error: p.error })),
        };
      }),
    });
  });
  return r;
}
