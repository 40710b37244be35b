/** Turns trainer events into a run directory a person can read: metrics, progress, curves, checkpoint. */
export { RunRecorder, type RunRecorderOptions, toRecord } from './run-recorder';
