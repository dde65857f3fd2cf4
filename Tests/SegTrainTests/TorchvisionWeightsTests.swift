import XCTest
import Foundation
import SegCore
import SegData
import SegTestSupport

/// torchvision's own full-size state_dicts run through `segdist predict --weights F --set
/// model=M` alone: width, classes, input channels and aux head come from the tensors, and the
/// pipeline is torchvision's (inputs / 255, ImageNet mean/std, softmax). The weights are made
/// here from the formula of Tests/Fixtures/make_torchvision_weights_fixture.py (which filled
/// torchvision's own models with them and stored their eval-mode softmax).
final class TorchvisionWeightsTests: XCTestCase {
    /// `count` values in [-0.5, 0.5): 24 bits of a hash of (tensor, element), as the script.
    static func unit(_ t: Int, _ count: Int) -> [Float] {
        (0..<count).map { i in
            var h = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 &+ (UInt64(t) &* 0xBF58_476D_1CE4_E5B9)
            h ^= h >> 31
            h = h &* 0x94D0_49BB_1331_11EB
            h ^= h >> 29
            return Float(h >> 40) / Float(1 << 24) - 0.5
        }
    }

    /// The script's state_dict for `model`, from the committed names and shapes.
    static func stateDict(_ model: String, to path: String) throws {
        var all: [String: [String: [Int]]] = [:]
        for file in ["torchvision-state-dicts.json", "torchvision-mobilenet-state-dicts.json"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repositoryFixtures + "/" + file))
            all.merge(try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: [Int]]])) { a, _ in a }
        }
        let shapes = try XCTUnwrap(all[model])
        var writer = SafeTensorsWriter(metadata: [:])
        for (t, name) in shapes.keys.sorted().enumerated() {
            let shape = shapes[name]!
            if name.hasSuffix("num_batches_tracked") { writer.add(name, int64s: [0], shape: shape); continue }
            let x = unit(t, shape.reduce(1, *))
            let values: [Float]
            if shape.count == 4 {
                let scale = Float((1.0 / Double(shape[1] * shape[2] * shape[3])).squareRoot() / (1.0 / 12.0).squareRoot())
                values = x.map { $0 * scale }
            } else if name.hasSuffix("running_var") {
                values = x.map { $0 + 1 }
            } else if name.hasSuffix(".weight") {
                values = x.map { 1 + $0 / 4 }
            } else {
                values = x.map { $0 / 4 }
            }
            writer.add(name, Tensor(shape: shape, storage: values))
        }
        try writer.write(to: path)
    }

    func testTorchvisionStateDictsPredictAsTorchvisionDoes() throws {
        let dir = NSTemporaryDirectory() + "segdist-tv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let expected = try SafeTensorsFile(path: Fixtures.repositoryFixtures + "/torchvision-predict.safetensors")
        let widths = ["deeplabv3_resnet50": 64, "fcn_resnet50": 64, "deeplabv3_mobilenet_v3_large": 16, "lraspp_mobilenet_v3_large": 16]
        for model in ["deeplabv3_resnet50", "fcn_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"] {
            try Self.stateDict(model, to: "\(dir)/\(model).safetensors")
            let run = try runSegdist(["predict", "--weights", "\(dir)/\(model).safetensors", "--set", "model=\(model)",
                                      "--input", Fixtures.repositoryFixtures + "/torchvision-predict.png", "--output", "\(dir)/\(model)"])
            XCTAssertEqual(run.code, 0, run.stderr)
            let aux = model.hasPrefix("lraspp") ? "false" : "true"
            XCTAssertTrue(run.stderr.contains("\(model) with width=\(widths[model]!), in_channels=3, classes=21, aux_loss=\(aux) (from its tensors); run as torchvision runs it"), run.stderr)
            let got = try NPYArray(path: "\(dir)/\(model)/probabilities.npy")
            let want = try expected.tensor(model)
            XCTAssertEqual(got.shape, want.shape)
            let worst = want.storage.indices.map { abs(Float(got.value($0)) - want.storage[$0]) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(model): max |p_segdist - p_torchvision|")
        }
    }

    func testAStateDictForAnotherModelNamesTheKeyAndTheSetting() throws {
        let dir = NSTemporaryDirectory() + "segdist-tv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.stateDict("fcn_resnet50", to: "\(dir)/fcn.safetensors")
        // FCN's weights under DeepLabV3's name: the classifier's shapes disagree
        let run = try runSegdist(["predict", "--weights", "\(dir)/fcn.safetensors", "--set", "model=deeplabv3_resnet50",
                                  "--input", Fixtures.repositoryFixtures + "/torchvision-predict.png", "--output", "\(dir)/out"])
        XCTAssertEqual(run.code, 2)
        XCTAssertTrue(run.stderr.contains("'classifier.4.weight' is [21, 512, 1, 1] in the file, the model's 'classifier.4.weight' is [21, 256, 1, 1]")
                      && run.stderr.contains("these tensors look like fcn_resnet50's: set model=fcn_resnet50"), run.stderr)
    }
}
