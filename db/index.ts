// The results store's public surface: import from here ('../db/index.ts').
export * from './client.ts';
export * from './conditions.ts';
export * from './store.ts';
export * from './registration.ts';
export * from './views.ts';
export * from './readonly.ts';
export * from './guest-sandbox.ts';
export * from './format.ts';
export * from './export.ts';
export * as schema from './schema.ts';
