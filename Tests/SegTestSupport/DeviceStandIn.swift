import SegCore

/// A backend whose tensors live on a pretend device (`.cuda(7)`): the memory is host memory,
/// but its storage says otherwise, so any code that reads or writes a tensor without going
/// through the backend traps (`TensorStorage.hostFloats` refuses device memory). Each op
/// unwraps its operands as host views, runs the CPU backend, and wraps the results. Training,
/// evaluation and prediction running on it prove they go through the seam alone.
public final class DeviceStandIn: Backend {
    public let device = Device.cuda(7)
    private let cpu = CPUBackend.shared
    public private(set) var calls = 0
    /// Makes conv2dForward wrong by this much on its first value (tests of checks that must notice).
    public var convolutionError: Float = 0
    public init() {}

    // host view of device memory (no copy), and device label on host memory (keeps it alive)
    func h(_ t: Tensor) -> Tensor {
        precondition(t.device == device, "DeviceStandIn was handed \(t.device) memory")
        return Tensor(shape: t.shape, buffer: TensorStorage(device: .host, byteCount: t.buffer.byteCount, address: t.buffer.address,
                                                            release: { _ in }), offset: t.offset)
    }
    func h(_ t: Tensor?) -> Tensor? { t.map(h) }
    func d(_ t: Tensor) -> Tensor {
        let keep = t.buffer
        return Tensor(shape: t.shape, buffer: TensorStorage(device: device, byteCount: keep.byteCount, address: keep.address,
                                                            release: { _ in _ = keep }), offset: t.offset)
    }
    func d(_ t: Tensor?) -> Tensor? { t.map(d) }
    func h(_ t: IndexTensor) -> IndexTensor {
        IndexTensor(shape: t.shape, buffer: TensorStorage(device: .host, byteCount: t.buffer.byteCount, address: t.buffer.address, release: { _ in }))
    }
    func d(_ t: IndexTensor) -> IndexTensor {
        let keep = t.buffer
        return IndexTensor(shape: t.shape, buffer: TensorStorage(device: device, byteCount: keep.byteCount, address: keep.address,
                                                                 release: { _ in _ = keep }))
    }
    func count() { calls += 1 }

    public func allocate(_ shape: [Int]) -> Tensor { count(); return d(cpu.allocate(shape)) }
    public func allocateIndices(_ shape: [Int]) -> IndexTensor { count(); return d(cpu.allocateIndices(shape)) }
    public func upload(_ t: Tensor) -> Tensor {
        count()
        if t.device == device { return t }
        return d(Tensor(shape: t.shape, storage: t.storage))
    }
    public func download(_ t: Tensor) -> Tensor {
        count()
        if t.device == .host { return t }
        return Tensor(shape: t.shape, storage: h(t).storage)
    }
    public func downloadIndices(_ t: IndexTensor) -> IndexTensor {
        count(); return IndexTensor(shape: t.shape, values: h(t).values)
    }
    public func fill(_ t: Tensor, _ value: Float) { count(); cpu.fill(h(t), value) }
    public func copy(_ src: Tensor, into dst: Tensor) { count(); cpu.copy(h(src), into: h(dst)) }
    public func addInPlace(_ dst: Tensor, _ src: Tensor) { count(); cpu.addInPlace(h(dst), h(src)) }
    public func scaleInPlace(_ t: Tensor, by s: Tensor) { count(); cpu.scaleInPlace(h(t), by: h(s)) }
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { count(); return d(cpu.add(h(a), h(b))) }

    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry) -> Tensor {
        count()
        let y = cpu.conv2dForward(h(x), weight: h(weight), bias: h(bias), geometry: geometry)
        if convolutionError != 0 { y.hostPointer[0] += convolutionError }
        return d(y)
    }
    public func conv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, inputGradient: Bool,
                               weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        count()
        return d(cpu.conv2dBackward(x: h(x), weight: h(weight), dy: h(dy), geometry: geometry, inputGradient: inputGradient,
                                    weightGradient: h(weightGradient), biasGradient: h(biasGradient)))
    }
    public func convTranspose2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry) -> Tensor {
        count(); return d(cpu.convTranspose2dForward(h(x), weight: h(weight), bias: h(bias), geometry: geometry))
    }
    public func convTranspose2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, inputGradient: Bool,
                                        weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        count()
        return d(cpu.convTranspose2dBackward(x: h(x), weight: h(weight), dy: h(dy), geometry: geometry, inputGradient: inputGradient,
                                             weightGradient: h(weightGradient), biasGradient: h(biasGradient)))
    }

    public func batchNormTrainForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                      momentum: Float, eps: Float, relu: Bool, group: CollectiveSum?) -> (Tensor, BatchNormStatistics) {
        count()
        let (y, s) = cpu.batchNormTrainForward(h(x), gamma: h(gamma), beta: h(beta), runningMean: h(runningMean),
                                               runningVar: h(runningVar), momentum: momentum, eps: eps, relu: relu, group: group)
        return (d(y), BatchNormStatistics(mean: d(s.mean), invStd: d(s.invStd), count: s.count))
    }
    public func batchNormTrainBackward(x: Tensor, y: Tensor, dy: Tensor, gamma: Tensor, statistics s: BatchNormStatistics,
                                       gammaGradient: Tensor, betaGradient: Tensor, relu: Bool, group: CollectiveSum?) -> Tensor {
        count()
        return d(cpu.batchNormTrainBackward(x: h(x), y: h(y), dy: h(dy), gamma: h(gamma),
                                            statistics: BatchNormStatistics(mean: h(s.mean), invStd: h(s.invStd), count: s.count),
                                            gammaGradient: h(gammaGradient), betaGradient: h(betaGradient), relu: relu, group: group))
    }
    public func batchNormEvalForward(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                                     eps: Float, relu: Bool) -> Tensor {
        count()
        return d(cpu.batchNormEvalForward(h(x), gamma: h(gamma), beta: h(beta), runningMean: h(runningMean), runningVar: h(runningVar),
                                          eps: eps, relu: relu))
    }

    public func maxPool2dForward(_ x: Tensor, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> (Tensor, IndexTensor) {
        count(); let (y, i) = cpu.maxPool2dForward(h(x), kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
        return (d(y), d(i))
    }
    public func maxPool2dBackward(dy: Tensor, indices: IndexTensor, inputShape: [Int]) -> Tensor {
        count(); return d(cpu.maxPool2dBackward(dy: h(dy), indices: h(indices), inputShape: inputShape))
    }
    public func bilinearForward(_ x: Tensor, height: Int, width: Int, alignCorners: Bool) -> Tensor {
        count(); return d(cpu.bilinearForward(h(x), height: height, width: width, alignCorners: alignCorners))
    }
    public func bilinearBackward(dy: Tensor, inputShape: [Int], alignCorners: Bool) -> Tensor {
        count(); return d(cpu.bilinearBackward(dy: h(dy), inputShape: inputShape, alignCorners: alignCorners))
    }
    public func adaptiveAvgPool2dForward(_ x: Tensor, height: Int, width: Int) -> Tensor {
        count(); return d(cpu.adaptiveAvgPool2dForward(h(x), height: height, width: width))
    }
    public func adaptiveAvgPool2dBackward(dy: Tensor, inputShape: [Int]) -> Tensor {
        count(); return d(cpu.adaptiveAvgPool2dBackward(dy: h(dy), inputShape: inputShape))
    }
    public func padForward(_ x: Tensor, _ padding: Padding) -> Tensor { count(); return d(cpu.padForward(h(x), padding)) }
    public func padBackward(dy: Tensor, inputShape: [Int], _ padding: Padding) -> Tensor {
        count(); return d(cpu.padBackward(dy: h(dy), inputShape: inputShape, padding))
    }
    public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor { count(); return d(cpu.concatChannels(h(a), h(b))) }
    public func splitChannels(_ dy: Tensor, first: Int) -> (Tensor, Tensor) {
        count(); let (a, b) = cpu.splitChannels(h(dy), first: first); return (d(a), d(b))
    }

    public func relu(_ x: Tensor) -> Tensor { count(); return d(cpu.relu(h(x))) }
    public func reluBackward(y: Tensor, dy: Tensor) -> Tensor { count(); return d(cpu.reluBackward(y: h(y), dy: h(dy))) }
    public func sigmoid(_ x: Tensor) -> Tensor { count(); return d(cpu.sigmoid(h(x))) }
    public func sigmoidBackward(y: Tensor, dy: Tensor) -> Tensor { count(); return d(cpu.sigmoidBackward(y: h(y), dy: h(dy))) }
    public func dropout(_ x: Tensor, p: Float, seed: UInt64, firstSample: Int) -> (Tensor, Tensor) {
        count(); let (y, m) = cpu.dropout(h(x), p: p, seed: seed, firstSample: firstSample); return (d(y), d(m))
    }
    public func multiply(_ a: Tensor, _ b: Tensor) -> Tensor { count(); return d(cpu.multiply(h(a), h(b))) }
    public func hardActivation(_ kind: HardActivation, _ x: Tensor) -> Tensor { count(); return d(cpu.hardActivation(kind, h(x))) }
    public func hardActivationBackward(_ kind: HardActivation, x: Tensor, dy: Tensor) -> Tensor {
        count(); return d(cpu.hardActivationBackward(kind, x: h(x), dy: h(dy)))
    }
    public func scaleChannels(_ x: Tensor, by scales: Tensor) -> Tensor { count(); return d(cpu.scaleChannels(h(x), by: h(scales))) }
    public func scaleChannelsBackward(x: Tensor, scales: Tensor, dy: Tensor) -> (Tensor, Tensor) {
        count(); let (dx, ds) = cpu.scaleChannelsBackward(x: h(x), scales: h(scales), dy: h(dy)); return (d(dx), d(ds))
    }
    public func groupedConv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry, groups: Int) -> Tensor {
        count(); return d(cpu.groupedConv2dForward(h(x), weight: h(weight), bias: h(bias), geometry: geometry, groups: groups))
    }
    public func groupedConv2dBackward(x: Tensor, weight: Tensor, dy: Tensor, geometry: ConvGeometry, groups: Int, inputGradient: Bool,
                                      weightGradient: Tensor, biasGradient: Tensor?) -> Tensor? {
        count()
        return d(cpu.groupedConv2dBackward(x: h(x), weight: h(weight), dy: h(dy), geometry: geometry, groups: groups,
                                           inputGradient: inputGradient, weightGradient: h(weightGradient), biasGradient: h(biasGradient)))
    }

    public func bceWithLogits(logits: Tensor, targets: Tensor) -> (Tensor, Tensor) {
        count(); let (l, g) = cpu.bceWithLogits(logits: h(logits), targets: h(targets)); return (d(l), d(g))
    }
    public func softmaxCrossEntropy(logits: Tensor, targets: IndexTensor, ignoreIndex: Int32, classWeights: Tensor?) throws -> (Tensor, Tensor) {
        count()
        let (l, g) = try cpu.softmaxCrossEntropy(logits: h(logits), targets: h(targets), ignoreIndex: ignoreIndex, classWeights: h(classWeights))
        return (d(l), d(g))
    }
    public func softDice(logits: Tensor, targets: Tensor, activation: DiceActivation, smooth: Float) -> (Tensor, Tensor) {
        count(); let (l, g) = cpu.softDice(logits: h(logits), targets: h(targets), activation: activation, smooth: smooth); return (d(l), d(g))
    }

    public func softmaxChannels(_ x: Tensor) -> Tensor { count(); return d(cpu.softmaxChannels(h(x))) }
    public func argmaxChannels(_ x: Tensor) -> IndexTensor { count(); return d(cpu.argmaxChannels(h(x))) }
    public func targetClasses(_ x: Tensor) -> IndexTensor { count(); return d(cpu.targetClasses(h(x))) }
    public func overlapCounts(logits: Tensor, targets: Tensor, activation: OutputActivation) -> [Int] {
        count(); return cpu.overlapCounts(logits: h(logits), targets: h(targets), activation: activation)
    }

    public func sgdUpdate(parameters: Tensor, gradients: Tensor, momentumBuffer: Tensor?, learningRate: Float, momentum: Float,
                          dampening: Float, weightDecay: Float, nesterov: Bool, firstStep: Bool) {
        count()
        cpu.sgdUpdate(parameters: h(parameters), gradients: h(gradients), momentumBuffer: h(momentumBuffer), learningRate: learningRate,
                      momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, firstStep: firstStep)
    }
    public func adamUpdate(parameters: Tensor, gradients: Tensor, m: Tensor, v: Tensor, step: Int, learningRate: Float,
                           beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool) {
        count()
        cpu.adamUpdate(parameters: h(parameters), gradients: h(gradients), m: h(m), v: h(v), step: step, learningRate: learningRate,
                       beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: decoupled)
    }
}
