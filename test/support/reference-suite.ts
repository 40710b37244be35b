import { ClusterHarness } from './cluster';
import { localReference, type WeightMap } from './cluster-checks';
import { DATASET_IMAGES } from './cluster-data';

/** What {@link referenceSuite} makes before a suite's tests: a harness, and the single-process trainer's weights. */
export interface ReferenceSuite {
  harness: ClusterHarness;
  reference: WeightMap;
}

/**
 * Called inside a `describe`: before its tests, a harness on the tests' generated dataset and the
 * single-process trainer's final weights for `yaml` (cached under `cacheName`); after them, the harness
 * disposed. The suites that compare distributed runs with the trainer all start this way.
 */
export function referenceSuite(cacheName: string, yaml: string): ReferenceSuite {
  const suite = {} as ReferenceSuite;
  before(async function () {
    this.timeout(120_000);
    suite.harness = await ClusterHarness.create({ images: DATASET_IMAGES });
    suite.reference = await localReference(cacheName, yaml, suite.harness.dataDir);
  });
  after(async () => {
    await suite.harness?.dispose();
  });
  return suite;
}
