import { defineStoreSuite } from './store.suite.ts';
import { pgliteDirectTarget } from './targets.ts';

defineStoreSuite(pgliteDirectTarget);
