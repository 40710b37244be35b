/**
 * Longest worker id either role accepts: the worker checks its own before it registers, the coordinator
 * checks again on registration. Ids end up in metric labels and log lines.
 */
export const MAX_WORKER_ID_LENGTH = 128;
