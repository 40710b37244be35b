import * as tf from '@tensorflow/tfjs';

/**
 * Keras 2.1's MobileNet v1 pads explicitly before each depthwise convolution: a ZeroPadding2D layer, then a
 * DepthwiseConv2D with 'valid' padding. Run as written, every such pair materialises a padded copy of the
 * activation (a PadV2) and, backward, crops the copy's gradient back (a Slice): on a 64x64 MobileNet step
 * ~9 ms of data movement and 24 kernel calls per micro-batch of 16, for nothing, since our depthwise kernels
 * take the padding as a parameter and skip the taps outside the input (common/compute, wasm-depthwise-
 * kernels.ts). {@link foldZeroPadding} makes each such pair of a model run as one depthwise convolution with
 * explicit padding: the padding layer passes its input on, and the convolution pads by the same amounts.
 * The skipped taps are the ones that read the padding's zeros, and adding a zero product changes no sum, so
 * the outputs and gradients are the same bits. Only the execution changes: the model's topology, weights,
 * serialised config and symbolic shapes stay as they were.
 */

/** The fields of tfjs-layers' ZeroPadding2D that the fold reads (public in its JavaScript). */
interface ZeroPaddingLayer extends tf.layers.Layer {
  padding: [[number, number], [number, number]];
  dataFormat: string;
}

/** The fields of tfjs-layers' DepthwiseConv2D that the fold reads and the folded call uses. */
interface DepthwiseLayer extends tf.layers.Layer {
  padding: string;
  strides: [number, number];
  dataFormat: string;
  dilationRate: number | number[];
  useBias: boolean;
  depthwiseKernel: tf.LayerVariable;
  activation: { apply(x: tf.Tensor): tf.Tensor } | null;
}

/** A layer's place in the graph, as tfjs-layers keeps it. */
interface GraphNode {
  outboundLayer: tf.layers.Layer;
}
interface GraphLayer {
  inboundNodes: GraphNode[];
  outboundNodes: GraphNode[];
}

type LayerCall = (inputs: tf.Tensor | tf.Tensor[], kwargs: tf.serialization.ConfigDict) => tf.Tensor | tf.Tensor[];

// Marks folded layers, so folding a model twice (or a model that shares them) changes nothing.
const FOLDED = Symbol('shardwise.models.foldedPadding');

const single = (inputs: tf.Tensor | tf.Tensor[]): tf.Tensor => (Array.isArray(inputs) ? inputs[0] : inputs);

const isUnit = (v: number | number[]): boolean => (Array.isArray(v) ? v.every((d) => d === 1) : v === 1);

/** The depthwise convolution that alone reads `layer`'s output, when the pair can run as one; else undefined. */
function foldableConsumer(layer: tf.layers.Layer, modelOutputs: ReadonlySet<tf.layers.Layer>): DepthwiseLayer | undefined {
  const pad = layer as ZeroPaddingLayer & GraphLayer;
  if (pad.getClassName() !== 'ZeroPadding2D' || pad.dataFormat !== 'channelsLast' || modelOutputs.has(pad)) return undefined;
  if (pad.inboundNodes.length !== 1 || pad.outboundNodes.length !== 1) return undefined;
  const conv = pad.outboundNodes[0].outboundLayer as DepthwiseLayer & GraphLayer;
  if (conv.getClassName() !== 'DepthwiseConv2D' || conv.inboundNodes.length !== 1) return undefined;
  if (conv.padding !== 'valid' || conv.dataFormat !== 'channelsLast' || !isUnit(conv.dilationRate) || conv.useBias) return undefined;
  return conv;
}

/** Runs `pad` as a pass-through and `conv` as a depthwise convolution padded by `pad`'s amounts. */
function fold(pad: ZeroPaddingLayer, conv: DepthwiseLayer): void {
  const [[top, bottom], [left, right]] = pad.padding;
  const explicit: tf.backend_util.ExplicitPadding = [[0, 0], [top, bottom], [left, right], [0, 0]];
  // A new tensor, not the input itself: tfjs-layers' inference disposes a layer's input once its last
  // reader has run (Layer.apply would clone an input returned as output anyway). The clone shares the data.
  const passThrough: LayerCall = (inputs) => tf.clone(single(inputs));
  const paddedConvolution: LayerCall = (inputs) => tf.tidy(() => {
    const y = tf.depthwiseConv2d(single(inputs) as tf.Tensor4D, conv.depthwiseKernel.read() as tf.Tensor4D, conv.strides, explicit, 'NHWC');
    return conv.activation ? conv.activation.apply(y) : y;
  });
  Object.assign(pad, { call: passThrough, [FOLDED]: true });
  Object.assign(conv, { call: paddedConvolution, [FOLDED]: true });
}

/**
 * Folds every ZeroPadding2D of `model` whose only reader is a 'valid', undilated, bias-free DepthwiseConv2D
 * (channels last, each layer used once, the padding not a model output) into that convolution; returns how
 * many pairs it folded. Idempotent.
 */
export function foldZeroPadding(model: tf.LayersModel): number {
  const outputs = new Set(model.outputLayers);
  let folded = 0;
  for (const layer of model.layers) {
    if ((layer as { [FOLDED]?: boolean })[FOLDED]) continue;
    const conv = foldableConsumer(layer, outputs);
    if (!conv || (conv as { [FOLDED]?: boolean })[FOLDED]) continue;
    fold(layer as ZeroPaddingLayer, conv);
    folded++;
  }
  return folded;
}
