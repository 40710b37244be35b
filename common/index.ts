/**
 * What coordinator, worker and CLI share. Other folders import only from here; inside `common/`, each
 * subfolder is reached through its own index.
 */
export * from './errors';
export { Rng } from './random';
export { ProcessState } from './process-state';
export * from './job';
export * from './compute';
export * from './data';
export * from './models';
export * from './training';
export * from './reporting';
export * from './retry';
export * from './wire';
export * from './collective';
export * from './bus';
export * from './telemetry';
export * from './kube';
export * from './security';
