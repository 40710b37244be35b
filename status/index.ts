/**
 * The live status page the coordinator serves at `/` on its metrics port: the job, epoch progress and ETA,
 * loss and accuracy curves growing as steps commit, the workers, learning rates and freeze state, and a
 * timeline of events. One read-only source (metrics.jsonl, the Prometheus registry, the membership list,
 * the checkpoint folders) feeds `/status.json` and the `/events` stream; the browser files are served from
 * `status/assets`, nothing from another origin.
 */
export { createStatusPage, statusPageUrl, type StatusPage } from './status-page';
export { StatusSource, type StatusSourceOptions } from './status-source';
export { statusRoutes, parseCursor, MAX_EVENT_STREAMS, STATUS_ASSETS_DIR } from './status-routes';
export { MetricsTail } from './metrics-tail';
export { Timeline, type WorkerView } from './timeline';
export { StatusAssetsError, StatusQueryError } from './errors';
export {
  STATUS_EVENT_KINDS,
  type StatusCursor,
  type StatusEpochPoint,
  type StatusEvent,
  type StatusEventKind,
  type StatusGroup,
  type StatusJob,
  type StatusProgress,
  type StatusSlice,
  type StatusSnapshot,
  type StatusStepPoint,
  type StatusWorker,
} from './status-types';
