/** Sweep specs of the sweep suites: a tiny small_cnn job on generated data, and the sweep settings a test adds. */

/** A sweep spec named `name` in `outputDir`, its base job `epochs` long, with `extra` YAML appended. */
export function sweepYaml(name: string, outputDir: string, extra: string, epochs = 3, testSet = false): string {
  return `name: ${name}
job:
  seed: 7
  data: { valFraction: 0.25, testSet: ${testSet} }
  model: { architecture: small_cnn }
  training: { epochs: ${epochs}, batchSize: 20 }
  optimizer: { type: adam, learningRate: 0.003 }
  freeze: { backboneEpochs: 1, unfreezeLearningRate: 0.001 }
outputDir: ${outputDir}
objective: { metric: val.loss }
budget: { maxConcurrentTrials: 2 }
executor: { cores: 2 }
${extra}`;
}
