import XCTest
import Foundation
import SegCore
import SegData
import SegKernels
import SegNN
@testable import SegTrain
import SegTestSupport

/// ONNX export: the protobuf wire format byte for byte, and every model's graph run by
/// onnxruntime (where it is installed) against segdist's own evaluation-mode forward — on the
/// traced size and, for models whose graph takes any size, on another one (odd sizes included,
/// which exercises the centring pads and the resizes that follow the input).
final class ONNXExportTests: XCTestCase {
    func testProtobufWireFormat() {
        var w = ProtobufWriter()
        w.int(1, 150)            // the protobuf guide's example: 08 96 01
        w.string(2, "testing")   // 12 07 74 65 73 74 69 6e 67
        w.int(3, -1)             // ten bytes of varint
        w.float(4, 1)            // 25 00 00 80 3f
        w.message(5) { $0.int(1, 2) }
        XCTAssertEqual(w.bytes, [0x08, 0x96, 0x01, 0x12, 0x07] + Array("testing".utf8)
                       + [0x18, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
                       + [0x25, 0x00, 0x00, 0x80, 0x3F, 0x2A, 0x02, 0x08, 0x02])
    }

    struct Case {
        var arch: ModelArchitecture? = nil
        /// The test support's gradient-readiness models, when `arch` is nil.
        var probe: Probe? = nil
        enum Probe: String { case probe_tied, probe_reversed }
        var name: String { arch?.rawValue ?? probe!.rawValue }
        var inputChannels = 3, classes = 3, width = 2, depth: Int? = nil
        var scaling: InputScaling? = .divideBy255
        var normalization: Normalization? = nil
        var activation: OutputActivation = .softmax
        var trace = (48, 48), other = (40, 72)
    }

    static let cases: [Case] = [
        Case(arch: .unet, inputChannels: 1, classes: 2, scaling: .minMax),
        Case(arch: .unet_add, classes: 1, activation: .sigmoid),
        Case(arch: .unet_shallow, normalization: Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]), other: (42, 30)),
        Case(arch: .unet_tconv),
        Case(arch: .fcn_m2nist, inputChannels: 1, classes: 11, trace: (64, 84), other: (36, 52)),
        Case(arch: .fcn8s, width: 4, trace: (64, 64), other: (70, 96)),
        Case(arch: .fcn_resnet50, width: 4, depth: 18, trace: (64, 64), other: (72, 40)),
        Case(arch: .deeplabv3_resnet50, width: 4, trace: (64, 64), other: (56, 80)),
        Case(arch: .pspnet, width: 4, depth: 18, trace: (64, 64)),
        Case(arch: .lraspp_mobilenet_v3_large, width: 4, trace: (64, 64), other: (72, 56)),
        Case(arch: .deeplabv3_mobilenet_v3_large, width: 4, trace: (64, 64), other: (48, 80)),
        Case(arch: .deeplabv3plus, width: 4, depth: 18, trace: (64, 64), other: (56, 72)),
        Case(probe: .probe_tied, classes: 2),
        Case(probe: .probe_reversed, classes: 2),
    ]

    func testEveryModelExportsAndSaysWhichSizesItTakes() throws {
        XCTAssertEqual(Set(Self.cases.compactMap(\.arch)), Set(ModelArchitecture.allCases.filter { $0 != .fcn_resnet101 && $0 != .deeplabv3_resnet101 }),
                       "every architecture (the -101 variants differ only in depth) has an export case")
        for c in Self.cases {
            let (_, result) = try export(c)
            XCTAssertEqual(result.dynamicSpatial, c.arch?.entry.exportsAnySize ?? true,
                           "\(c.name): what the model table says (PSPNet's pyramid pooling alone has fixed bins)")
            XCTAssertGreaterThan(result.nodeCount, 3)
        }
    }

    func testONNXRuntimeGivesSegdistsLogitsForEveryModel() throws {
        guard Python.canImport("onnxruntime") else {
            throw XCTSkip("ONNX round trip did not run: python3 with onnxruntime is not installed here (`pip install onnxruntime`)")
        }
        let dir = NSTemporaryDirectory() + "segdist-onnx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var worst: [(String, Double)] = []
        for c in Self.cases {
            let (model, result) = try export(c)
            let path = "\(dir)/\(c.name).onnx"
            try Data(result.bytes).write(to: URL(fileURLWithPath: path))
            for (h, w) in [c.trace] + (result.dynamicSpatial ? [c.other] : []) {
                var rng = SeededGenerator(seed: 7)
                let pixels = Tensor(shape: [2, c.inputChannels, h, w], storage: (0..<(2 * c.inputChannels * h * w)).map { _ in Float(Int.random(in: 0...255, using: &rng)) })
                try writeNPY(pixels, to: "\(dir)/image.npy")
                let ran = Python.run([Python.fixture("run_onnx.py"), "\(path)", "\(dir)/image.npy", "\(dir)/logits.npy", "\(dir)/p.npy"])
                XCTAssertEqual(ran.status, 0, "\(c.name) \(h)x\(w): \(ran.output)")
                guard ran.status == 0 else { continue }
                let want = model.forward(modelInput(pixels, c), training: false)
                let probabilities = CPUBackend.shared.activate(want, c.activation)
                let got = try npy("\(dir)/logits.npy", shape: want.shape), gotP = try npy("\(dir)/p.npy", shape: want.shape)
                let scale = max(1, Double(want.storage.map { abs($0) }.max()!))
                let d = maxDifference(got, want) / scale, dp = maxDifference(gotP, probabilities)
                worst.append(("\(c.name) \(h)x\(w)", max(d, dp)))
                XCTAssertLessThanOrEqual(d, 1e-4, "\(c.name) \(h)x\(w) logits")
                XCTAssertLessThanOrEqual(dp, 1e-4, "\(c.name) \(h)x\(w) probabilities")
            }
        }
        print("ONNX (onnxruntime) vs segdist, largest difference per model and size: "
              + worst.map { "\($0.0) \(String(format: "%.1e", $0.1))" }.joined(separator: ", "))
    }

    // MARK: helpers

    /// The model with moved running statistics (two training-mode passes), exported at the trace size.
    func export(_ c: Case) throws -> (SegmentationModel, ONNXExport.Result) {
        let model: SegmentationModel
        switch (c.arch, c.probe) {
        case let (arch?, _): model = arch.make(inputChannels: c.inputChannels, classes: c.classes, width: c.width, seed: 3, backboneDepth: c.depth)
        case (nil, .probe_tied?): model = TiedProbe(inputChannels: c.inputChannels, classes: c.classes, width: c.width, seed: 3)
        case (nil, _): model = ReversedProbe(inputChannels: c.inputChannels, classes: c.classes, width: c.width, seed: 3)
        }
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<2 {
            let x = Tensor(shape: [2, c.inputChannels, c.trace.0, c.trace.1],
                           storage: (0..<(2 * c.inputChannels * c.trace.0 * c.trace.1)).map { _ in Float.random(in: -1...2, using: &rng) })
            _ = model.forward(x, training: true)
        }
        let result = try ONNXExport.export(model: model, traceHeight: c.trace.0, traceWidth: c.trace.1, inputScaling: c.scaling,
                                           normalization: c.normalization, activation: c.activation)
        return (model, result)
    }

    /// Pixels as segdist's data pipeline and `InferencePipeline` prepare them.
    func modelInput(_ pixels: Tensor, _ c: Case) -> Tensor {
        let perImage = pixels.count / pixels.shape[0]
        var values = pixels.storage
        for n in 0..<pixels.shape[0] {
            var image = Array(values[(n * perImage)..<((n + 1) * perImage)])
            switch c.scaling {
            case .minMax?:
                let lo = image.min()!, hi = image.max()!
                image = image.map { hi > lo ? ($0 - lo) / (hi - lo) : 0 }
            case .divideBy255?: image = image.map { $0 / 255 }
            case nil: break
            }
            c.normalization?.apply(to: &image, channels: c.inputChannels)
            values.replaceSubrange((n * perImage)..<((n + 1) * perImage), with: image)
        }
        return Tensor(shape: pixels.shape, storage: values)
    }

    func npy(_ path: String, shape: [Int]) throws -> Tensor {
        let a = try NPYArray(path: path)
        XCTAssertEqual(a.shape, shape, path)
        return Tensor(shape: a.shape, storage: a.values(0..<a.count).map { Float($0) })
    }

    func maxDifference(_ a: Tensor, _ b: Tensor) -> Double {
        guard a.shape == b.shape else { return .infinity }
        return zip(a.storage, b.storage).reduce(0) { max($0, Double(abs($1.0 - $1.1))) }
    }
}
