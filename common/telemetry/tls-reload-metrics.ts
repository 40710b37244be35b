import { Counter, type Registry } from 'prom-client';
import { ReloadingTlsCredentials, type TlsCredentials } from '../security';

/** Label of the reload counters: 'reloaded' (a rotated set taken) or 'refused' (a rotated set rejected, the old one kept). */
export const RELOAD_RESULT_LABEL = ['result'] as const;

/**
 * Counts the reloads of watched credentials in `registry` as `name{result="reloaded"|"refused"}`
 * (`shardwise_tls_reloads_total` at the coordinator, `shardwise_worker_tls_reloads_total` at a worker).
 * Both series exist from the first scrape, so an alert on refusals works before the first one. Nothing for
 * fixed credentials (none, or loaded once).
 */
export function countTlsReloads(registry: Registry, tls: TlsCredentials | undefined, name: string): void {
  if (!(tls instanceof ReloadingTlsCredentials)) return;
  const counter = new Counter({
    name,
    help: 'Certificate rotations found on disk: reloaded (new connections use them) or refused (invalid; the previous certificate stays in force).',
    labelNames: RELOAD_RESULT_LABEL,
    registers: [registry],
  });
  counter.inc({ result: 'reloaded' }, 0);
  counter.inc({ result: 'refused' }, 0);
  tls.onOutcome((outcome) => counter.inc({ result: outcome.result }));
}
