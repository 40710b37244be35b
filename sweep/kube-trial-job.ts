/**
 * The batch/v1 Job of one stretch of a one-worker trial: one pod that runs `shardwise train --local` with
 * the same arguments a local trial gets, the sweep's ReadWriteMany claim mounted at the same path as
 * where the sweep runs (so the job file, the run folder and the fork checkpoint it resumes from are the
 * same paths in the pod), never retried by Kubernetes (the sweep decides: a failed pod is a failed trial),
 * and locked down as the chart's pods are (non-root, read-only root filesystem, no API token).
 */
import type { V1Job } from '@kubernetes/client-node';
import type { TrialRunRequest } from './executor';
import type { KubernetesExecutorSpec } from './spec-schema';
import { trialArgs } from './trial-run-dir';

/** Label holding the sweep's name on every object the sweep creates: what a restarted sweep cleans up by. */
export const SWEEP_LABEL = 'shardwise.io/sweep';
/** Label holding the trial id. */
export const TRIAL_LABEL = 'shardwise.io/trial';
/** Label the Job controller puts on a Job's pods (Kubernetes 1.27+). */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
/** The trial container's name. */
export const TRIAL_CONTAINER = 'trial';
/** Seconds a deleted trial pod has to write its checkpoint (the trainer checkpoints on SIGTERM). */
export const TRIAL_TERMINATION_GRACE_SECONDS = 60;

/** `<sweep>-<trial>-e<from>-<attempt>`: unique per stretch, at most 63 characters (the sweep name has at most 41). */
export function trialJobName(sweepName: string, request: Pick<TrialRunRequest, 'trialId' | 'fromEpoch' | 'attempt'>): string {
  return `${sweepName}-${request.trialId}-e${request.fromEpoch}-${request.attempt}`;
}

/** The Job object for `request`. */
export function trialJobManifest(settings: KubernetesExecutorSpec, sweepName: string, namespace: string, request: TrialRunRequest): V1Job {
  const name = trialJobName(sweepName, request);
  const labels = {
    'app.kubernetes.io/name': 'shardwise',
    'app.kubernetes.io/part-of': 'shardwise',
    'app.kubernetes.io/component': 'sweep-trial',
    [SWEEP_LABEL]: sweepName,
    [TRIAL_LABEL]: request.trialId,
  };
  const shared = settings.sharedVolume;
  const env = {
    // The MobileNet download (and CIFAR-10's, without --data) is cached once for every trial.
    SHARDWISE_CACHE_DIR: `${shared.mountPath.replace(/\/$/, '')}/.cache`,
    ...settings.env,
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace, labels },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: TRIAL_TERMINATION_GRACE_SECONDS,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: TRIAL_CONTAINER,
            image: settings.image,
            imagePullPolicy: settings.imagePullPolicy,
            // The image's entrypoint is the shardwise CLI.
            args: trialArgs(request, { exitWithParent: false }),
            env: Object.entries(env).map(([n, value]) => ({ name: n, value })),
            // A failed trial's last output lines become the pod's termination message: the sweep's error.
            terminationMessagePolicy: 'FallbackToLogsOnError',
            ...(settings.resources ? { resources: settings.resources } : {}),
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            volumeMounts: [
              { name: 'sweep', mountPath: shared.mountPath },
              { name: 'tmp', mountPath: '/tmp' },
              ...(settings.dataset ? [{ name: 'dataset', mountPath: settings.dataset.mountPath, readOnly: true }] : []),
            ],
          }],
          volumes: [
            { name: 'sweep', persistentVolumeClaim: { claimName: shared.claimName } },
            { name: 'tmp', emptyDir: {} },
            ...(settings.dataset ? [{ name: 'dataset', persistentVolumeClaim: { claimName: settings.dataset.claimName, readOnly: true } }] : []),
          ],
        },
      },
    },
  };
}
