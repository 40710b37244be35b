/**
 * The setup every fault suite shares: a cluster harness on the generated dataset and the single-process
 * reference of the tests' job, made before the suite's tests and disposed after them.
 */
import { ClusterHarness } from './cluster';
import { finishAndCheck, localReference, type WeightMap } from './cluster-checks';
import { DATASET_IMAGES, testJobYaml } from './cluster-data';

/** What a fault suite's tests use; its fields are set once the suite's `before` hook ran. */
export interface FaultSuite {
  harness: ClusterHarness;
  reference: WeightMap;
  /** Waits for the job to end (`run`) and makes the run-level checks against the reference (finishAndCheck). */
  finish(run: () => Promise<void>, runDir: string, label: string): Promise<void>;
}

/** Registers the suite's `before`/`after` hooks (call inside `describe`) and returns what they set up. */
export function faultSuite(): FaultSuite {
  const suite = {
    finish: (run: () => Promise<void>, runDir: string, label: string) => finishAndCheck(suite.harness, run, runDir, suite.reference, label),
  } as FaultSuite;
  before(async function () {
    this.timeout(120_000);
    suite.harness = await ClusterHarness.create({ images: DATASET_IMAGES });
    suite.reference = await localReference('test-job', testJobYaml('reference'), suite.harness.dataDir);
  });
  after(async () => {
    await suite.harness?.dispose();
  });
  return suite;
}
