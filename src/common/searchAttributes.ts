/**
 * Custom search attributes, defined once: registered on the dev server at start, set by the
 * workflows, and filtered on by operators in the Temporal Web UI
 * (e.g. `FleetModel = "tiny" AND FleetRequestKind = "coldLoad"`).
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const FleetModel = defineSearchAttributeKey('FleetModel', SearchAttributeType.KEYWORD);
export const FleetHost = defineSearchAttributeKey('FleetHost', SearchAttributeType.KEYWORD);
export const FleetRequestKind = defineSearchAttributeKey('FleetRequestKind', SearchAttributeType.KEYWORD);
/** Hosts counted as serving the model in a discovery cycle. */
export const FleetBackendCount = defineSearchAttributeKey('FleetBackendCount', SearchAttributeType.INT);
/** A discovery cycle that REPLACED its model's pin set (complete coverage). */
export const FleetPinReplaced = defineSearchAttributeKey('FleetPinReplaced', SearchAttributeType.BOOL);

/** The remote provider a workflow is about (attested discovery cycles). */
export const FleetProvider = defineSearchAttributeKey('FleetProvider', SearchAttributeType.KEYWORD);

/** name → dev-server type name, for `temporal server start-dev --search-attribute K=T`. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Int' | 'Bool'> = {
  [FleetModel.name]: 'Keyword',
  [FleetHost.name]: 'Keyword',
  [FleetRequestKind.name]: 'Keyword',
  [FleetBackendCount.name]: 'Int',
  [FleetPinReplaced.name]: 'Bool',
  [FleetProvider.name]: 'Keyword',
};
