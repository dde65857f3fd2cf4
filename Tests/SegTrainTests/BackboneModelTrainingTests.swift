import XCTest
import Foundation
import SegCore
import SegNN
import SegTrain

/// The ResNet-backbone recipes train, start from other weights (init_from), and refuse what
/// they cannot do.
final class BackboneModelTrainingTests: XCTestCase {
    var dir: String!
    override func setUpWithError() throws { dir = NSTemporaryDirectory() + "segdist-backbone-\(UUID().uuidString)" }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// A shipped recipe shrunk to seconds: its model, loss, data and optimizer as written.
    func recipe(_ name: String, _ sub: String, _ extra: [String] = []) throws -> TrainingConfig {
        var c = try TrainingConfig.load(path: CommandLineTests.root.appendingPathComponent("configs/\(name).cfg").path)
        for o in ["width=4", "image_size=32", "radius_min=2", "radius_max=8", "batch_size=4", "epochs=1", "steps_per_epoch=3",
                  "val_images=4", "checkpoint_dir=\(dir!)/\(sub)"] + extra { try c.override(o) }
        try c.validate(source: "test")
        return c
    }

    func testTheResNetRecipesTrain() throws {
        for name in ["deeplabv3", "fcn_resnet", "pspnet", "fcn8s", "portrait_unet", "lraspp_mobilenet", "deeplabv3_mobilenet", "deeplabv3plus"] {
            let config = try recipe(name, name)
            XCTAssertEqual(config.auxLoss, !["portrait_unet", "fcn8s", "lraspp_mobilenet", "deeplabv3plus"].contains(name),
                           "\(name): the ResNet and DeepLabV3 recipes train with the auxiliary head")
            let run = try TrainingRun(config: config)
            let summary = try run.run()
            XCTAssertEqual(summary.steps, 3, name)
            XCTAssertNotNil(summary.finalDice, name)
            if name == "portrait_unet" {
                // one sigmoid channel: the foreground; prediction thresholds it at 0.5
                XCTAssertEqual(config.classes, 1)
                XCTAssertEqual(run.model.classes, 1)
                let image = try config.makeDataset().validationBatch([0]).images
                let prediction = Predictor.predict(model: run.model, input: image, activation: config.loss.outputActivation)
                XCTAssertEqual(prediction.probabilities.shape, [1, 32, 32])
                XCTAssertEqual(prediction.classes, prediction.probabilities.storage.map { $0 > 0.5 ? 1 : 0 })
                XCTAssertEqual(prediction.foreground, prediction.probabilities.storage)
            }
            // the checkpoint holds torchvision's names, the auxiliary head included
            let file = try SafeTensorsFile(path: "\(dir!)/\(name)/step-000003.safetensors")
            let expected = ["portrait_unet": ["encoder1.enc1norm1.running_var", "upconv4.weight", "conv.bias"],
                            "pspnet": ["backbone.layer4.1.bn2.running_var", "ppm.features.3.2.running_var", "aux.4.bias"],
                            "fcn8s": ["features.41.running_var", "fc7.weight", "upscore8.weight"],
                            "lraspp_mobilenet": ["backbone.15.block.2.fc2.weight", "classifier.scale.1.weight", "classifier.low_classifier.bias"],
                            "deeplabv3_mobilenet": ["backbone.13.block.1.0.weight", "classifier.0.convs.4.2.running_var", "aux_classifier.4.bias"],
                            "deeplabv3plus": ["encoder.layer4.1.bn2.running_var", "decoder.aspp.0.convs.1.0.0.weight", "segmentation_head.0.bias"]][name]
                ?? ["backbone.layer4.1.bn2.running_var", "aux_classifier.4.bias"]
            for tensor in expected { XCTAssertNotNil(file.entry(tensor), "\(name): \(tensor)") }
        }
    }

    /// `bn_momentum` replaces every batch norm's momentum in training: after the first step the
    /// running variance has moved m x (batch variance - 1) from its initial 1, so momentum 0.5
    /// moves it exactly 50 times as far as the model's own 0.01 (MobileNetV3's).
    func testBatchNormMomentumOverridesEveryLayers() throws {
        func firstStep(_ momentum: String) throws -> [Float] {
            let config = try recipe("lraspp_mobilenet", "bn-\(momentum)", ["bn_momentum=\(momentum)", "steps_per_epoch=1"])
            let run = try TrainingRun(config: config)
            try run.run()
            let store = run.model.store
            return store.bufferTensor(try XCTUnwrap(store.bufferSlot(named: "backbone.0.1.running_var"))).storage.map { $0 - 1 }
        }
        let own = try firstStep("auto"), half = try firstStep("0.5")
        XCTAssertEqual(try recipe("lraspp_mobilenet", "x", ["bn_momentum=auto"]).batchNormMomentum, nil)
        for (a, b) in zip(own, half) { XCTAssertEqual(Double(b / a), 50, accuracy: 1e-2) }
    }

    func testInitFromLoadsAnotherRunsWeightsAndReportsTheRest() throws {
        let first = try recipe("deeplabv3", "first")
        _ = try TrainingRun(config: first).run()
        // a second run without the auxiliary head starts from the first one's weights: every
        // tensor but the aux head's is loaded, the aux head's are reported as unexpected
        let second = try recipe("deeplabv3", "second", ["aux_loss=false", "init_from=\(dir!)/first/step-000003.safetensors",
                                                      "seed=7"])
        let run = try TrainingRun(config: second)
        let report = try XCTUnwrap(run.initialisation)
        XCTAssertEqual(report.missing, [])
        XCTAssertFalse(report.unexpected.isEmpty)
        XCTAssertTrue(report.unexpected.allSatisfy { $0.hasPrefix("aux_classifier.") }, "\(report.unexpected)")
        let file = try SafeTensorsFile(path: "\(dir!)/first/step-000003.safetensors")
        for slot in run.model.store.parameterSlots {
            XCTAssertEqual(run.model.store.parameterTensor(slot), try file.tensor(slot.name), slot.name)
        }
        // strict refuses the extra tensors, and a different shape is refused with the names
        var strict = second
        strict.initStrict = true
        XCTAssertThrowsError(try TrainingRun(config: strict)) { XCTAssertTrue("\($0)".contains("unexpected"), "\($0)") }
        var wider = second
        wider.width = 8
        XCTAssertThrowsError(try TrainingRun(config: wider)) { XCTAssertTrue("\($0)".contains("backbone.conv1.weight"), "\($0)") }
    }

    func testDeepLabNeedsTwoImagesPerForwardPass() throws {
        let config = try recipe("deeplabv3", "one", ["batch_size=2", "micro_batch=1"])
        XCTAssertThrowsError(try TrainingRun(config: config)) { XCTAssertTrue("\($0)".contains("at least 2 images"), "\($0)") }
        var unet = try recipe("deeplabv3", "unet")
        unet.model = .unet
        unet.backboneDepth = 18
        XCTAssertThrowsError(try unet.validate(source: "test")) { XCTAssertTrue("\($0)".contains("backbone_depth"), "\($0)") }
        unet.backboneDepth = nil
        XCTAssertThrowsError(try unet.validate(source: "test")) { XCTAssertTrue("\($0)".contains("aux_loss"), "\($0)") }
    }

    func testClassWeightsAreCheckedAndWeightTheLoss() throws {
        var config = try recipe("fcn8s", "weighted", ["class_weights=1, 1, 10"])
        XCTAssertEqual(config.classWeights, [1, 1, 10])
        XCTAssertTrue(config.rendered().contains("class_weights: 1, 1, 10\n"))
        let weighted = try TrainingRun(config: config)
        try weighted.run()
        config.classWeights = nil
        config.checkpointDir = dir + "/unweighted"
        let plain = try TrainingRun(config: config)
        try plain.run()
        XCTAssertNotEqual(weighted.model.store.parameters.storage, plain.model.store.parameters.storage, "the weights change what is learned")
        config.classWeights = [1, 2]
        XCTAssertThrowsError(try config.validate(source: "test")) { XCTAssertTrue("\($0)".contains("one weight per class (3)"), "\($0)") }
        config.classWeights = [1, 2, 3]
        config.loss = .bce
        XCTAssertThrowsError(try config.validate(source: "test")) { XCTAssertTrue("\($0)".contains("loss: ce"), "\($0)") }
    }

    /// A model with dropout in two heads, an auxiliary loss and a cosine schedule resumes exactly:
    /// 2 steps, then a resumed run to 4, equal 4 in one go (dropout masks follow the step).
    func testAResNetModelWithDropoutResumesExactly() throws {
        let config = try recipe("deeplabv3", "resume", ["backbone_depth=18", "steps_per_epoch=4"])
        let straight = try TrainingRun(config: config)
        try straight.run()
        var split = config
        split.checkpointDir = dir + "/split"
        let stopped = try TrainingRun(config: split).run(stopAfter: 2)
        let resumed = try TrainingRun(config: split, resume: try Checkpoint(path: stopped.lastCheckpoint!))
        try resumed.run()
        XCTAssertEqual(resumed.step, 4)
        XCTAssertEqual(resumed.model.store.parameters.storage, straight.model.store.parameters.storage)
        XCTAssertEqual(resumed.model.store.buffers.storage, straight.model.store.buffers.storage)
    }
}
