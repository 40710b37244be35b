/**
 * The model zoo: pretrained and built-in backbones, classification heads, the layers-format loader and
 * saver, and the self-contained export. Variable naming is documented in `parts.ts`.
 */
export { buildModel, type BuildModelOptions } from './zoo';
export {
  type ModelParts, type PreprocessSpec, type NamedVariables, RAW_IMAGE_SIZE,
  preprocess, namedVariables, assertUniqueVariableNames, reseedDropout, disposeModelParts,
} from './parts';
export { exportModel, EXPORT_INPUT_NAME, type ExportMetadata } from './export';
export { modelFingerprint, weightsHash } from './fingerprint';
export { loadLayersModelFrom, readLayersArtifacts, type LoadLayersModelOptions, type LayersArtifacts } from './layers-loader';
export { saveLayersModel, fileSaveHandler, MODEL_JSON_FILE, WEIGHTS_FILE } from './layers-saver';
export { cutAtLayer, type CutOptions } from './cut';
export { foldZeroPadding } from './fold-padding';
export { buildHead, HEAD_LAYER_PREFIX, type HeadOptions } from './heads';
export {
  BUILTIN_ARCHITECTURES, BUILTIN_FACTORIES, type BuiltinArchitecture, type ArchitectureFactory, type ArchitectureOptions, type SeedSource,
  buildResNet18, buildAlexNet, buildVggSmall, buildSmallCnn,
} from './architectures';
export {
  locateMobilenet, MOBILENET_V1_URL, MOBILENET_V1_CUT_LAYER, MOBILENET_PATH_ENV, DEFAULT_SHARED_DIR,
  type MobilenetLocation, type LocateMobilenetOptions,
} from './mobilenet';
export { seedInitializers } from './seed-initializers';
export {
  ModelLoadError, ModelSaveError, LayerNotFoundError, ModelBuildError, MODEL_LOAD_REASONS, type ModelLoadReason,
} from './errors';
