#!/usr/bin/env node
// The `fleet` command: loads the TypeScript CLI through tsx so the sources run as they are.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
