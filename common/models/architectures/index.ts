/** Built-in backbones for 32x32 images, trained from scratch (they have no pretrained weights). */
import { buildAlexNet } from './alexnet';
import type { ArchitectureFactory } from './blocks';
import { buildResNet18 } from './resnet18';
import { buildSmallCnn } from './small-cnn';
import { buildVggSmall } from './vgg-small';

export type { ArchitectureFactory, ArchitectureOptions, SeedSource } from './blocks';
export { buildAlexNet, buildResNet18, buildSmallCnn, buildVggSmall };

/** The built-in architecture names, as they appear in `model.architecture`. */
export const BUILTIN_ARCHITECTURES = ['resnet18', 'alexnet', 'vgg_small', 'small_cnn'] as const;
export type BuiltinArchitecture = (typeof BUILTIN_ARCHITECTURES)[number];

/** Factory of each built-in backbone. */
export const BUILTIN_FACTORIES: Readonly<Record<BuiltinArchitecture, ArchitectureFactory>> = {
  resnet18: buildResNet18,
  alexnet: buildAlexNet,
  vgg_small: buildVggSmall,
  small_cnn: buildSmallCnn,
};
