/**
 * Activity timeout profiles shared by several workflows. Each workflow still makes its own
 * `proxyActivities` call at module top; this module only keeps one profile from being
 * written, and tuned, in several places.
 */
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';

/**
 * Waiting on another workflow (a cold load, a pool move) through a control-plane activity:
 * loads of large files take minutes; the activity heartbeats while it waits, and a failed
 * wait is reported to the caller, which decides (no retry here).
 */
export const AWAIT_WORKFLOW_PROFILE: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 1 },
};

/**
 * Control-plane bookkeeping as local activities (fleet reads, placement and pool rows): short
 * database work, retried a few times quickly since a blip must not fail a load or a move.
 */
export const STATE_LOCAL_PROFILE: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 5, initialInterval: '200 ms' },
};
