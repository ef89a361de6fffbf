/** The software version hosts report (in heartbeats, later in attestation reports). */
import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
export const SOFTWARE_VERSION: string = pkg.version;
