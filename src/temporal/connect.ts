/**
 * One NativeConnection per process, shared by the client and every worker in it: that is what
 * lets Temporal start a workflow eagerly on a worker of the same process (`fleet dev`).
 * Also registers the project's search attributes on a cluster that lacks them.
 */
import { Client } from '@temporalio/client';
import type { DataConverter, PayloadCodec } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../common/searchAttributes.js';
import type { Logger } from '../logger.js';

export interface TemporalHandle {
  connection: NativeConnection;
  client: Client;
  namespace: string;
  /** The payload codec every worker of this process must use too (undefined: payloads in clear). */
  dataConverter: DataConverter;
  codec?: PayloadCodec;
  close(): Promise<void>;
}

export async function connectTemporal(address: string, namespace: string, codec?: PayloadCodec): Promise<TemporalHandle> {
  const connection = await NativeConnection.connect({ address });
  const dataConverter: DataConverter = codec ? { payloadCodecs: [codec] } : {};
  const client = new Client({ connection, namespace, dataConverter });
  return { connection, client, namespace, dataConverter, ...(codec ? { codec } : {}), close: () => connection.close() };
}

// @temporalio/proto is CommonJS: its namespace comes through the default export.
const TYPE = proto.temporal.api.enums.v1.IndexedValueType;
const TYPE_OF: Record<string, proto.temporal.api.enums.v1.IndexedValueType> = {
  Keyword: TYPE.INDEXED_VALUE_TYPE_KEYWORD,
  Int: TYPE.INDEXED_VALUE_TYPE_INT,
  Bool: TYPE.INDEXED_VALUE_TYPE_BOOL,
};

/** gRPC status ALREADY_EXISTS. */
const ALREADY_EXISTS = 6;

/** Idempotent: adds only the attributes the namespace does not have yet. */
export async function ensureSearchAttributes(t: TemporalHandle, log: Logger): Promise<void> {
  const existing = await t.connection.operatorService.listSearchAttributes({ namespace: t.namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !have.has(name));
  if (missing.length === 0) return;
  try {
    await t.connection.operatorService.addSearchAttributes({
      namespace: t.namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, TYPE_OF[type]!])),
    });
  } catch (err) {
    // Another process registered them between our list and our add: that is the goal reached.
    if ((err as { code?: number }).code === ALREADY_EXISTS) return;
    throw err;
  }
  log.info({ added: missing.map(([n]) => n) }, 'registered search attributes');
}
