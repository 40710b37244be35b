export * from './spec';
export { JobSpecError } from './errors';
export { parseJobSpec, loadJobSpec, compileJobSpec, formatIssue } from './compile';
export { jobSpecSchema, type JobSpecInput } from './schema';
export { microBatchesPerStep } from './autoscale';
