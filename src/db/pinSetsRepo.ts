/**
 * Pin sets and discovery-cycle outcomes: the model's current set (validated where it is read)
 * and a record of every cycle, written together so the set and its reason never disagree.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { VouchedKeys } from '../domain/attestedProvider.js';
import { PinSetState, type PinSet } from '../domain/pinSet.js';
import type { Database } from './schema.js';

const pinSetRow = z.object({
  state: z.enum(Object.values(PinSetState) as [PinSetState, ...PinSetState[]]),
  fingerprints: z.array(z.string()),
});

/** An attested provider's pin set: the set, the keys each fingerprint vouched for, the last count, the cycle number. */
export interface PinRecord {
  pinSet: PinSet;
  keys: Record<string, VouchedKeys>;
  backendCount: number | null;
  cycleSeq: number;
}

const keysSchema = z.record(z.string(), z.object({ ed25519: z.string().optional(), ecdsa: z.string().optional() }));

/** The build's pin record; bootstrap with nothing pinned when no cycle has run. */
export async function readPinRecord(db: Kysely<Database>, modelId: string): Promise<PinRecord> {
  const row = await db.selectFrom('pin_sets').select(['state', 'fingerprints', 'keys', 'backend_count', 'cycle_seq']).where('model_id', '=', modelId).executeTakeFirst();
  if (!row) return { pinSet: { state: PinSetState.bootstrap, fingerprints: [] }, keys: {}, backendCount: null, cycleSeq: 0 };
  const pinSet = pinSetRow.safeParse(row);
  const keys = keysSchema.safeParse(typeof row.keys === 'string' ? JSON.parse(row.keys) : row.keys);
  if (!pinSet.success || !keys.success) throw new Error(`pin set of ${modelId} is malformed in the database`);
  return { pinSet: pinSet.data, keys: keys.data, backendCount: row.backend_count, cycleSeq: row.cycle_seq };
}

/** The model's pin set; `bootstrap` with nothing pinned when no cycle has run. */
export async function readPinSet(db: Kysely<Database>, modelId: string): Promise<PinSet> {
  return (await readPinRecord(db, modelId)).pinSet;
}

export interface CycleRecord {
  workflowId: string;
  modelId: string;
  startedAt: string;
  pinSet: PinSet;
  outcome: unknown;
  /** Attested providers only. */
  attested?: { keys: Record<string, VouchedKeys>; backendCount: number | null; cycleSeq: number };
}

/** Stores the new pin set and the cycle's outcome in one transaction (idempotent per workflow id). */
export async function recordDiscoveryCycle(db: Kysely<Database>, r: CycleRecord): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const values = {
      state: r.pinSet.state,
      fingerprints: JSON.stringify(r.pinSet.fingerprints),
      updated_at: new Date(),
      ...(r.attested ? { keys: JSON.stringify(r.attested.keys), backend_count: r.attested.backendCount, cycle_seq: r.attested.cycleSeq } : {}),
    };
    await tx
      .insertInto('pin_sets')
      .values({ model_id: r.modelId, ...values })
      .onConflict((oc) => oc.column('model_id').doUpdateSet(values))
      .execute();
    await tx
      .insertInto('discovery_cycles')
      .values({ workflow_id: r.workflowId, model_id: r.modelId, started_at: r.startedAt, outcome: JSON.stringify(r.outcome) })
      .onConflict((oc) => oc.column('workflow_id').doUpdateSet({ outcome: JSON.stringify(r.outcome) }))
      .execute();
  });
}

export async function setModelVerifiable(
  db: Kysely<Database>,
  modelId: string,
  verifiable: boolean,
  intervalS: number,
): Promise<boolean> {
  const res = await db
    .updateTable('models')
    .set({ verifiable, discovery_interval_s: intervalS })
    .where('id', '=', modelId)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Discovery cycles recorded for a model: the rotation index of the next one's fan-out window. */
export async function countDiscoveryCycles(db: Kysely<Database>, modelId: string): Promise<number> {
  const row = await db.selectFrom('discovery_cycles').select((eb) => eb.fn.countAll<string>().as('n')).where('model_id', '=', modelId).executeTakeFirst();
  return Number(row?.n ?? 0);
}
