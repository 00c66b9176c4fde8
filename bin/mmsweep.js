#!/usr/bin/env node
// The CLI is TypeScript run through tsx: no build step between a clone and a working `mmsweep`.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
