/**
 * Where the pretrained ImageNet MobileNet v1 comes from. Resolution order (first that applies):
 * 1. `model.path` of the job spec;
 * 2. the SHARDWISE_MOBILENET_PATH environment variable;
 * 3. `<repo>/../shared/models/mobilenet_v1_imagenet_conv_pw_12/model.json`, when that file exists
 *    (already cut after conv_pw_12_relu);
 * 4. the public tfjs-models URL of the full 224x224 classifier, cut after conv_pw_12_relu.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

/** The public full MobileNet v1 1.0 (ImageNet) in TF.js layers format. */
export const MOBILENET_V1_URL = 'https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_1.0_224/model.json';
/** Layer after which MobileNet v1 is cut to serve as a backbone: 1024 channels at 1/32 resolution. */
export const MOBILENET_V1_CUT_LAYER = 'conv_pw_12_relu';
/** Environment variable overriding where the MobileNet v1 model.json is. */
export const MOBILENET_PATH_ENV = 'SHARDWISE_MOBILENET_PATH';

/** Where a MobileNet was found and which rule chose it (for logs and error messages). */
export interface MobilenetLocation {
  location: string;
  source: 'spec' | 'env' | 'shared' | 'url';
}

/** Inputs of {@link locateMobilenet}; the defaults are the real process environment and checkout. */
export interface LocateMobilenetOptions {
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Folder whose `models/mobilenet_v1_imagenet_conv_pw_12` is tried. @default `<repo>/../shared` */
  sharedDir?: string;
}

/**
 * Default shared folder: beside the repository root. This file is `<repo>/common/models/`, or
 * `<repo>/dist/common/models/` once compiled (`npm run build`).
 */
export const DEFAULT_SHARED_DIR = path.resolve(__dirname, path.extname(__filename) === '.js' ? '../../../..' : '../../..', 'shared');

/** Picks the MobileNet v1 location by the resolution order in the module comment. */
export function locateMobilenet(specPath: string | undefined, options: LocateMobilenetOptions = {}): MobilenetLocation {
  if (specPath !== undefined && specPath !== '') return { location: specPath, source: 'spec' };
  const fromEnv = (options.env ?? process.env)[MOBILENET_PATH_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { location: fromEnv, source: 'env' };
  const shared = path.join(options.sharedDir ?? DEFAULT_SHARED_DIR, 'models', 'mobilenet_v1_imagenet_conv_pw_12', 'model.json');
  if (existsSync(shared)) return { location: shared, source: 'shared' };
  return { location: MOBILENET_V1_URL, source: 'url' };
}
