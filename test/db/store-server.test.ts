import { defineStoreSuite } from './store.suite.ts';
import { serverTarget } from './targets.ts';

defineStoreSuite(serverTarget);
