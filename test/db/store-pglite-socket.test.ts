import { defineStoreSuite } from './store.suite.ts';
import { pgliteSocketTarget } from './targets.ts';

defineStoreSuite(pgliteSocketTarget);
