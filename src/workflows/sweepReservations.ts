/**
 * sweepReservations: releases budget reservations whose request never settled nor released
 * them — the API process died between reserve and settle. Started every minute by a
 * Temporal Schedule (overlap SKIP, see src/temporal/sweepSchedule.ts); the work is one
 * control-plane activity, so a sweep is visible, retried and filterable like any workflow.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ControlPlaneActivities } from '../activities/controlPlane.js';

const { releaseExpiredReservations } = proxyActivities<ControlPlaneActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5, initialInterval: '1 second' },
});

export async function sweepReservations(): Promise<{ released: number }> {
  return { released: await releaseExpiredReservations() };
}
