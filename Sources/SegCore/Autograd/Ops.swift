// The differentiable ops. Each computes its output through the backend and hands it to the
// pass's one hook, `emit`: the traced op (exporters), the multiply-adds (FLOP count) and the
// closure with what its backward needs (the tape), each taken when the pass has that channel. Backward closures
// return input gradients (the tape sums them) and accumulate parameter gradients in place.

extension Pass {
    // MARK: Convolutions

    /// y = conv2d(x, weight (Cout, Cin / groups, k, k)) + bias, as `F.conv2d` (groups > 1:
    /// grouped; groups = Cin: depthwise).
    public func conv2d(_ x: Tensor, weight: Parameter, bias: Parameter?, stride: Int = 1, padding: Int = 0,
                       dilation: Int = 1, groups: Int = 1) -> Tensor {
        let (_, c, h, w) = x.nchw, ws = weight.value.shape
        precondition(ws.count == 4 && c == ws[1] * groups && ws[0] % groups == 0,
                     "conv2d: weight \(ws) in \(groups) group(s) does not take \(c) input channels")
        let g = ConvGeometry(channels: c, height: h, width: w, kernelH: ws[2], kernelW: ws[3],
                             stride: stride, padding: padding, dilation: dilation)
        let y = groups == 1 ? backend.conv2dForward(x, weight: weight.value, bias: bias?.value, geometry: g)
                            : backend.groupedConv2dForward(x, weight: weight.value, bias: bias?.value, geometry: g, groups: groups)
        let needsDx = wants(x), input = saved(x)
        let perOutput = g.patchSize / groups
        return emit(y, .conv2d(weight: weight.value, bias: bias?.value, stride: stride, padding: padding, dilation: dilation, groups: groups),
                    inputs: [x], parameters: [weight, bias],
                    cost: OpCost(multiplyAdds: x.shape[0] * ws[0] * g.outPixels * perOutput, column: groups == 1 ? g.patchSize * g.outPixels : 0)) { [backend] dy in
            groups == 1
                ? [backend.conv2dBackward(x: input.value, weight: weight.value, dy: dy, geometry: g, inputGradient: needsDx,
                                          weightGradient: weight.gradient, biasGradient: bias?.gradient)]
                : [backend.groupedConv2dBackward(x: input.value, weight: weight.value, dy: dy, geometry: g, groups: groups,
                                                 inputGradient: needsDx, weightGradient: weight.gradient, biasGradient: bias?.gradient)]
        }
    }

    /// batchNorm(conv2d(x)), with its ReLU when `relu`. In an untraced, untaped evaluation pass
    /// on the CPU the batch norm is folded into the convolution and the ReLU runs in its
    /// epilogue (`CPUBackend.conv2dBatchNormEvalForward`): one pass over the output instead of
    /// three and no intermediate tensor — prediction's and validation's path. Training, export
    /// (a traced pass keeps both nodes) and other backends run the two ops as they are.
    /// `parts`, when given, are further channel blocks of the input: the convolution is of
    /// cat([x] + parts), which the folded path reads without building.
    public func conv2dBatchNorm(_ x: Tensor, _ parts: [Tensor] = [], weight: Parameter, bias: Parameter?, stride: Int = 1, padding: Int = 0,
                                dilation: Int = 1, groups: Int = 1, gamma: Parameter, beta: Parameter, runningMean: Tensor,
                                runningVar: Tensor, momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false) -> Tensor {
        guard !training, tape == nil, trace == nil, work == nil, groups == 1, let cpu = backend as? CPUBackend,
              parts.allSatisfy({ $0.rank == 4 && $0.shape[0] == x.shape[0] && $0.shape[2] == x.shape[2] && $0.shape[3] == x.shape[3] }) else {
            let joined = parts.reduce(x) { concatChannels($0, $1) }
            let y = conv2d(joined, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
            return batchNorm(y, weight: gamma, bias: beta, runningMean: runningMean, runningVar: runningVar, momentum: momentum,
                             eps: eps, relu: relu)
        }
        let (_, _, h, w) = x.nchw, ws = weight.value.shape, c = parts.reduce(x.shape[1]) { $0 + $1.shape[1] }
        precondition(ws.count == 4 && c == ws[1] && gamma.value.count == ws[0],
                     "conv2d + batch_norm: weight \(ws) and \(gamma.value.count) channels do not take \(c) input channels")
        let g = ConvGeometry(channels: c, height: h, width: w, kernelH: ws[2], kernelW: ws[3], stride: stride, padding: padding,
                             dilation: dilation)
        return cpu.conv2dBatchNormEvalForward([x] + parts, weight: weight.value, bias: bias?.value, gamma: gamma.value, beta: beta.value,
                                              runningMean: runningMean, runningVar: runningVar, eps: eps, geometry: g, relu: relu)
    }

    /// y = conv_transpose2d(x, weight (Cin, Cout, k, k)) + bias, as `F.conv_transpose2d`.
    public func convTranspose2d(_ x: Tensor, weight: Parameter, bias: Parameter?, stride: Int = 1, padding: Int = 0,
                                outputPadding: Int = 0, dilation: Int = 1) -> Tensor {
        let (_, c, h, w) = x.nchw, ws = weight.value.shape
        precondition(ws.count == 4 && c == ws[0], "conv_transpose2d: weight \(ws) does not take \(c) input channels")
        let g = ConvGeometry.transposed(outChannels: ws[1], inH: h, inW: w, kernelH: ws[2], kernelW: ws[3], stride: stride,
                                        padding: padding, outputPadding: outputPadding, dilation: dilation)
        let y = backend.convTranspose2dForward(x, weight: weight.value, bias: bias?.value, geometry: g)
        let needsDx = wants(x), input = saved(x)
        return emit(y, .convTranspose2d(weight: weight.value, bias: bias?.value, stride: stride, padding: padding,
                                        outputPadding: outputPadding, dilation: dilation),
                    inputs: [x], parameters: [weight, bias],
                    cost: OpCost(multiplyAdds: x.shape[0] * g.outPixels * g.patchSize * ws[0], column: g.patchSize * g.outPixels)) { [backend] dy in
            [backend.convTranspose2dBackward(x: input.value, weight: weight.value, dy: dy, geometry: g, inputGradient: needsDx,
                                             weightGradient: weight.gradient, biasGradient: bias?.gradient)]
        }
    }

    // MARK: Normalisation

    /// Batch norm (optionally fused with the ReLU after it). Training: batch statistics (over
    /// `batchNormGroup` when set) and the running statistics moved by `momentum` in their
    /// memory; evaluation: the running statistics.
    public func batchNorm(_ x: Tensor, weight: Parameter, bias: Parameter, runningMean: Tensor, runningVar: Tensor,
                          momentum: Float = 0.1, eps: Float = 1e-5, relu: Bool = false) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == weight.value.count,
                     "batch_norm expects \(weight.value.count) channels, got input \(x.shape)")
        guard training else {
            let y = backend.batchNormEvalForward(x, gamma: weight.value, beta: bias.value, runningMean: runningMean,
                                                 runningVar: runningVar, eps: eps, relu: relu)
            return emit(y, .batchNorm(gamma: weight.value, beta: bias.value, mean: runningMean, variance: runningVar, eps: eps, relu: relu),
                        inputs: [x])
        }
        let group = batchNormGroup
        let (y, stats) = backend.batchNormTrainForward(x, gamma: weight.value, beta: bias.value, runningMean: runningMean,
                                                       runningVar: runningVar, momentum: batchNormMomentum ?? momentum, eps: eps, relu: relu,
                                                       group: group)
        guard let cpu = backend as? CPUBackend else {
            // y is the fused ReLU's mask, read only with it: without, backward does not keep y alive
            // (a ResNet block's last batch norm feeds the residual sum: 4C channels a block)
            let mask = relu ? y : x
            return emit(y, nil, inputs: [x], parameters: [weight, bias]) { [backend] dy in
                [backend.batchNormTrainBackward(x: x, y: mask, dy: dy, gamma: weight.value, statistics: stats,
                                                gammaGradient: weight.gradient, betaGradient: bias.gradient, relu: relu,
                                                group: group)]
            }
        }
        // On the CPU nothing keeps y: backward takes the ReLU's mask from x (which it keeps
        // anyway), and a convolution reading y rebuilds it in its backward (one elementwise pass)
        // — the BN-ReLU outputs between a block's convolutions are not held from forward to backward.
        let gamma = weight.value, beta = bias.value
        let out = emit(y, nil, inputs: [x], parameters: [weight, bias]) { dy in
            [cpu.batchNormTrainBackward(x: x, beta: beta, dy: dy, gamma: gamma, statistics: stats, gammaGradient: weight.gradient,
                                        betaGradient: bias.gradient, relu: relu, group: group)]
        }
        tape?.rebuildable(out) { cpu.batchNormReapply(x, gamma: gamma, beta: beta, statistics: stats, relu: relu) }
        return out
    }

    // MARK: Resampling and layout

    /// Max pooling, as `F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceilMode)`.
    public func maxPool2d(_ x: Tensor, kernel: Int = 2, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) -> Tensor {
        guard tape != nil else {   // no backward: the maxima without their indices
            return emit(backend.maxPool2dValues(x, kernel: kernel, stride: stride ?? kernel, padding: padding, ceilMode: ceilMode),
                        .maxPool2d(kernel: kernel, stride: stride ?? kernel, padding: padding, ceilMode: ceilMode), inputs: [x])
        }
        let (y, indices) = backend.maxPool2dForward(x, kernel: kernel, stride: stride ?? kernel, padding: padding, ceilMode: ceilMode)
        let shape = x.shape
        return emit(y, .maxPool2d(kernel: kernel, stride: stride ?? kernel, padding: padding, ceilMode: ceilMode), inputs: [x]) { [backend] dy in [backend.maxPool2dBackward(dy: dy, indices: indices, inputShape: shape)] }
    }

    /// Bilinear resize to `height x width`, as `F.interpolate(mode="bilinear")`.
    public func resizeBilinear(_ x: Tensor, height: Int, width: Int, alignCorners: Bool) -> Tensor {
        resizeBilinear(x, height: height, width: width, alignCorners: alignCorners, reference: nil)
    }

    /// Bilinear resize to the spatial size of `reference` (a size an exported graph takes from
    /// that value at run time).
    public func resizeBilinear(_ x: Tensor, like reference: Tensor, alignCorners: Bool) -> Tensor {
        resizeBilinear(x, height: reference.shape[2], width: reference.shape[3], alignCorners: alignCorners,
                       reference: reference)
    }

    private func resizeBilinear(_ x: Tensor, height: Int, width: Int, alignCorners: Bool, reference: Tensor?) -> Tensor {
        if x.shape[2] == height && x.shape[3] == width && alignCorners && trace == nil { return x }
        let y = backend.bilinearForward(x, height: height, width: width, alignCorners: alignCorners)
        let shape = x.shape
        return emit(y, .resizeBilinear(alignCorners: alignCorners, reference: reference.map(ValueID.init)),
                    inputs: [x], traced: [x] + (reference.map { [$0] } ?? [])) { [backend] dy in [backend.bilinearBackward(dy: dy, inputShape: shape, alignCorners: alignCorners)] }
    }

    public func adaptiveAvgPool2d(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let y = backend.adaptiveAvgPool2dForward(x, height: height, width: width)
        let shape = x.shape
        return emit(y, .adaptiveAvgPool2d(height: height, width: width), inputs: [x]) { [backend] dy in [backend.adaptiveAvgPool2dBackward(dy: dy, inputShape: shape)] }
    }

    /// Zero padding by (left, right, top, bottom), negative amounts cropping, as `F.pad`.
    public func pad(_ x: Tensor, _ padding: Padding) -> Tensor { pad(x, padding, reference: nil) }

    /// Zero padding (or cropping) of `x` centred on the spatial size of `reference` (the extra
    /// row or column going to the bottom/right), as the UNet's skip alignment.
    public func pad(_ x: Tensor, centeredOn reference: Tensor) -> Tensor {
        pad(x, Padding.centering(from: x.shape[2], x.shape[3], to: reference.shape[2], reference.shape[3]), reference: reference)
    }

    private func pad(_ x: Tensor, _ padding: Padding, reference: Tensor?) -> Tensor {
        if padding.isZero && trace == nil { return x }
        let y = backend.padForward(x, padding)
        let shape = x.shape
        return emit(y, .pad(padding, reference: reference.map(ValueID.init)), inputs: [x],
                    traced: [x] + (reference.map { [$0] } ?? [])) { [backend] dy in [backend.padBackward(dy: dy, inputShape: shape, padding)] }
    }

    /// Channel concatenation, as `torch.cat([a, b], dim=1)`.
    public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
        let y = backend.concatChannels(a, b)
        let first = a.shape[1]
        return emit(y, .concatChannels, inputs: [a, b]) { [backend] dy in
            let (da, db) = backend.splitChannels(dy, first: first)
            return [da, db]
        }
    }

    // MARK: Elementwise

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        let y = backend.add(a, b)
        return emit(y, .add, inputs: [a, b]) { dy in [dy, dy] }
    }

    /// y = s * x.
    public func scaled(_ x: Tensor, by s: Float) -> Tensor {
        let factor = backend.upload(Tensor(repeating: s, shape: [1]))
        let y = backend.allocate(x.shape)
        backend.copy(x, into: y)
        backend.scaleInPlace(y, by: factor)
        return emit(y, .scaled(s), inputs: [x]) { [backend] dy in
            let dx = backend.allocate(dy.shape)
            backend.copy(dy, into: dx)
            backend.scaleInPlace(dx, by: factor)
            return [dx]
        }
    }

    /// relu(a + b): a residual block's join. In an untraced, untaped pass on the CPU, `a` —
    /// when nothing else holds it — takes the sum and is clamped where it is (one pass over
    /// memory, no new tensor: the same values); otherwise the two ops are recorded as they are.
    public func addReLU(_ a: consuming Tensor, _ b: Tensor) -> Tensor {
        if tape == nil, trace == nil, work == nil, let cpu = backend as? CPUBackend, a.shape == b.shape, a.isUniquelyOwned() {
            cpu.addReLUInPlace(a, b)
            return a
        }
        return relu(add(a, b))
    }

    public func relu(_ x: Tensor) -> Tensor {
        let y = backend.relu(x)
        return emit(y, .relu, inputs: [x]) { [backend] dy in [backend.reluBackward(y: y, dy: dy)] }
    }

    public func sigmoid(_ x: Tensor) -> Tensor {
        let y = backend.sigmoid(x)
        return emit(y, .sigmoid, inputs: [x]) { [backend] dy in [backend.sigmoidBackward(y: y, dy: dy)] }
    }

    /// x * relu6(x + 3) / 6, as `F.hardswish`.
    public func hardswish(_ x: Tensor) -> Tensor { hard(.hardswish, x, traced: .hardswish) }

    /// relu6(x + 3) / 6, as `F.hardsigmoid`.
    public func hardsigmoid(_ x: Tensor) -> Tensor { hard(.hardsigmoid, x, traced: .hardsigmoid) }

    private func hard(_ kind: HardActivation, _ x: Tensor, traced: TracedOp) -> Tensor {
        let y = backend.hardActivation(kind, x)
        return emit(y, traced, inputs: [x]) { [backend] dy in [backend.hardActivationBackward(kind, x: x, dy: dy)] }
    }

    /// x (N, C, H, W) * scales (N, C, 1, 1), broadcast as PyTorch does (the squeeze-and-excitation
    /// block's `scale * input`, LR-ASPP's `x * s`).
    public func scaleChannels(_ x: Tensor, by scales: Tensor) -> Tensor {
        precondition(scales.rank == 4 && scales.shape[0] == x.shape[0] && scales.shape[1] == x.shape[1] && scales.count == x.shape[0] * x.shape[1],
                     "scaleChannels: scales \(scales.shape) for input \(x.shape)")
        let y = backend.scaleChannels(x, by: scales)
        return emit(y, .scaleChannels, inputs: [x, scales]) { [backend] dy in
            let (dx, ds) = backend.scaleChannelsBackward(x: x, scales: scales, dy: dy)
            return [dx, ds]
        }
    }

    /// Inverted dropout in training (masks from the pass's `randomness`); the identity in
    /// evaluation or when the pass has no randomness.
    public func dropout(_ x: Tensor, p: Float) -> Tensor {
        guard training, p > 0, let randomness else { return x }
        let (y, mask) = backend.dropout(x, p: p, seed: randomness.nextSiteSeed(), firstSample: randomness.firstSample)
        return emit(y, nil, inputs: [x]) { [backend] dy in [backend.multiply(dy, mask)] }
    }

    // MARK: Losses (scalar outputs; their gradient is computed with the loss and scaled in backward)

    /// Mean binary cross-entropy on logits, as `F.binary_cross_entropy_with_logits`.
    public func bceWithLogits(_ logits: Tensor, targets: Tensor) -> Tensor {
        let (loss, grad) = backend.bceWithLogits(logits: logits, targets: targets)
        return recordLoss(loss, logits: logits, gradient: grad)
    }

    /// Mean softmax cross-entropy over the non-ignored pixels, optionally class-weighted, as
    /// `F.cross_entropy(weight=, ignore_index=)`.
    public func crossEntropy(_ logits: Tensor, targets: IndexTensor, ignoreIndex: Int32 = -100, classWeights: Tensor? = nil) throws -> Tensor {
        let (loss, grad) = try backend.softmaxCrossEntropy(logits: logits, targets: targets, ignoreIndex: ignoreIndex,
                                                           classWeights: classWeights)
        return recordLoss(loss, logits: logits, gradient: grad)
    }

    /// Soft Dice loss on one-hot targets.
    public func softDice(_ logits: Tensor, targets: Tensor, activation: DiceActivation = .sigmoid, smooth: Float = 1) -> Tensor {
        let (loss, grad) = backend.softDice(logits: logits, targets: targets, activation: activation, smooth: smooth)
        return recordLoss(loss, logits: logits, gradient: grad)
    }

    private func recordLoss(_ loss: Tensor, logits: Tensor, gradient: Tensor) -> Tensor {
        emit(loss, nil, inputs: [logits]) { [backend] dy in
            backend.scaleInPlace(gradient, by: dy)
            return [gradient]
        }
    }
}
