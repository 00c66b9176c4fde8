// The workflow bundle's entry point: every workflow type the workers register.
export { studyWorkflow } from './study.ts';
