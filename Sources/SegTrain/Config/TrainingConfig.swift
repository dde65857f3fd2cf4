import SegCore
import SegNN
import SegData

/// Every knob of a training run. The built-in default equals `configs/unet.cfg`: the lab's
/// recipe (SGD lr 0.001, momentum 0.9, weight decay 0.0005, BCE on one-hot channels, 128x128
/// grey images with 10 discs and noise 20) at a width a 2-core machine trains in minutes.
public struct TrainingConfig: Equatable, Sendable {
    public enum DataKind: String, CaseIterable, Sendable { case shapes, rgb_shapes, npy, folder }
    public enum OptimizerKind: String, CaseIterable, Sendable { case sgd, adam, adamw }
    public enum ScheduleKind: String, CaseIterable, Sendable { case constant, step, cosine }
    public enum DeviceKind: String, CaseIterable, Sendable { case auto, cpu, cuda }

    // Model
    public var model: ModelArchitecture = .unet
    public var width = 16
    public var inChannels = 1
    public var classes = 2
    public var loss: LossKind = .bce
    /// Cross-entropy's weight per class (nil: all 1).
    public var classWeights: [Float]? = nil
    /// `class_weights: auto`: balanced weights from the training masks' class frequencies,
    /// resolved into `classWeights` when the data is prepared.
    public var classWeightsAuto = false
    /// ResNet depth of the backbone models; nil = the depth in the model's name.
    public var backboneDepth: Int? = nil
    /// The auxiliary FCN head on layer3 (loss weight 0.5), for the ResNet models.
    public var auxLoss = false
    /// A safetensors state_dict (e.g. converted torchvision weights) to start from; "" = none.
    public var initFrom = ""
    /// Put before every name of `initFrom` (e.g. `backbone.` for a plain ResNet checkpoint).
    public var initPrefix = ""
    /// Refuse `initFrom` unless it holds exactly the model's tensors.
    public var initStrict = false
    // Data
    public var data: DataKind = .shapes
    public var imageSize = 128
    public var discs = 10
    public var radiusMin = 5
    public var radiusMax = 50
    /// Distance of disc centres from the edges; nil = size * 20 / 128 (the recipe's 20 at 128 px).
    public var border: Int? = nil
    public var noise: Float = 20
    public var squares = false
    /// `data: npy`: the images and masks arrays, the held-out share, and which one-hot channel
    /// is the background.
    public var imagesNPY = ""
    public var masksNPY = ""
    public var valFraction: Float = 0.1
    public var onehotBackground: NPYDataset.Background = .last
    /// `data: folder`: the directory with images/ and masks/ (and optionally val/), or the two
    /// directories named separately.
    public var dataDir = ""
    public var imagesDir = ""
    public var masksDir = ""
    /// How mask files become labels: the unlabelled value, and colours for colour masks.
    public var ignoreIndex: Int? = 255
    public var classColors: [[UInt8]]? = nil
    public var ignoreColor: [UInt8]? = nil
    /// What 255 in grey masks means: nil (`auto`) = decided once from all masks when the data is
    /// prepared (then recorded here, so checkpoints carry it); true = class 1; false = the
    /// ignore_index (or an error without one).
    public var whiteIsForeground: Bool? = nil
    /// How images are resized for the model (file data keeps its own size by default).
    public var resize: ResizeRule = .none
    /// How 8-bit pixels become inputs; nil (`auto`) = min-max for the grey synthetic discs,
    /// divided by 255 for everything else.
    public var inputScalingChoice: InputScaling? = nil
    /// Test-time augmentation in evaluation and prediction: the mean of the mirrored predictions.
    public var ttaFlip = false
    /// Training augmentation (flips, scale, rotation, crop, brightness/contrast, noise).
    public var augmentation = Augmentation()
    /// Per-channel (x - mean) / std after scaling pixels to [0, 1] (ImageNet's for torchvision's
    /// pretrained weights); nil = none. `auto`: measured over the training images when the
    /// data is prepared (then stored in the effective config, so checkpoints carry it).
    public var normalizeMean: [Float]? = nil
    public var normalizeStd: [Float]? = nil
    public var normalizeAuto = false
    // Optimisation
    public var optimizer: OptimizerKind = .sgd
    public var lr: Float = 0.001
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0.0005
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var schedule: ScheduleKind = .constant
    public var stepSize = 100
    public var gamma: Float = 0.1
    public var minLR: Float = 0
    public var warmupSteps = 0
    // Run
    public var epochs = 3
    public var stepsPerEpoch = 50
    public var batchSize = 8
    public var valImages = 50
    /// Evaluate every this many steps; 0 = after each epoch.
    public var evalEvery = 0
    public var logEvery = 10
    public var seed = 0
    /// Worker threads; 0 = the cores available to this process.
    public var threads = 0
    /// Where each rank computes: `auto` = its GPU when one is usable, else the CPU.
    public var device = DeviceKind.auto
    /// Whether ranks may share a GPU when a node has more ranks than GPUs.
    public var shareGPU = false
    public var checkpointDir = "runs/unet"
    /// Write a checkpoint every this many steps; 0 = after each epoch.
    public var checkpointEvery = 0
    public var keepCheckpoints = 3
    /// TensorBoard event files in the run directory (metrics.jsonl is kept either way).
    public var tensorboard = false
    // Data parallelism
    /// Batch-norm statistics over the global batch (all ranks) instead of each rank's slice.
    public var syncBN = false
    /// Overrides every batch norm's momentum in training (nil: each layer's own).
    public var batchNormMomentum: Float? = nil
    /// Images per forward/backward on a rank; gradients accumulate over micro-batches. 0 = the rank's whole slice.
    public var microBatch = 0
    /// Size of a gradient all-reduce bucket, in MiB.
    public var bucketMB: Float = 1
    /// Seconds a rank waits in a collective before declaring another rank dead.
    public var collectiveTimeout: Float = 60

    public init() {}

    public var totalSteps: Int { epochs * stepsPerEpoch }
    public var effectiveBorder: Int { border ?? imageSize * 20 / 128 }
    public var evalInterval: Int { evalEvery > 0 ? evalEvery : stepsPerEpoch }
    public var checkpointInterval: Int { checkpointEvery > 0 ? checkpointEvery : stepsPerEpoch }

    public func makeModel() -> SegmentationModel {
        model.make(inputChannels: inChannels, classes: classes, width: width, seed: UInt64(seed), backboneDepth: backboneDepth,
                   auxiliary: auxLoss)
    }

    public func makeOptimizer() throws -> Optimizer {
        switch optimizer {
        case .sgd: return try SGD(momentum: momentum, weightDecay: weightDecay)
        case .adam: return try Adam(beta1: beta1, beta2: beta2, weightDecay: weightDecay)
        case .adamw: return try Adam(beta1: beta1, beta2: beta2, weightDecay: weightDecay, decoupledWeightDecay: true)
        }
    }

    public func makeSchedule() -> LearningRateSchedule {
        switch schedule {
        case .constant: return LearningRateSchedule(base: lr, kind: .constant, warmupSteps: warmupSteps)
        case .step: return LearningRateSchedule(base: lr, kind: .step(stepSize: stepSize, gamma: gamma), warmupSteps: warmupSteps)
        case .cosine:
            return LearningRateSchedule(base: lr, kind: .cosine(totalSteps: max(1, totalSteps - warmupSteps), minLR: minLR),
                                        warmupSteps: warmupSteps)
        }
    }
}
