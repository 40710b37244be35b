/**
 * Run reporting: the run folder (job spec, metrics.jsonl, checkpoints, summary), the training curves
 * as SVG and PNG, and the progress display. Inputs are reporting's own record types; the trainer's
 * events are mapped onto them in one adapter.
 */
export { CurveThreadError, MetricsFormatError, RunDirectoryError } from './errors';
export {
  METRICS_RECORD_TYPES, decodeMetricsLine, encodeMetricsLine,
  type EpochRecord, type EpochReport, type EpochReportRecord, type FreezeRecord, type LrChangeRecord, type MetricsRecord, type MetricsRecordType,
  type ReplicaHashRecord,
  type SplitMetrics, type StepRecord, type ValidationMetrics,
} from './records';
export {
  RUN_FILES, RunDirectory, readMetrics, utcStamp, type CreateRunOptions, type ReadMetricsOptions,
} from './run-directory';
export { recordsBefore, type ResumePoint } from './resume-history';
export { findFonts, rendersText, svgToPng, type FontSet, type PngImage } from './svg-png';
export {
  CURVE_NAMES, curveSpecs, movingAverage, renderSvg, resolveCurveOptions, writeCurves,
  type CurveFiles, type CurveName, type CurveOptions, type ResolvedCurveOptions,
} from './curves';
export {
  createProgress, formatDuration, formatEpochLine, formatLr, resolveProgressOptions,
  type Progress, type ProgressOptions, type ProgressStream,
} from './progress';
export { CurveThread } from './curve-thread';
/** Turns trainer events into a run directory a person can read: metrics, progress, curves, checkpoint. */
export { RunRecorder, type RunRecorderOptions, toRecord } from './run-recorder';
