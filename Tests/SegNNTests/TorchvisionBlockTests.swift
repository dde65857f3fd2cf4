import XCTest
import Foundation
import SegCore
@testable import SegNN
import SegTestSupport

/// torchvision's own BasicBlock, Bottleneck, ASPP and FCNHead (Tests/Fixtures, made by
/// make_model_fixtures.py) against segdist's: outputs, input gradient, every parameter
/// gradient and the running statistics after one training-mode pass; and max pooling with
/// padding and ceil_mode.
final class TorchvisionBlockTests: XCTestCase {
    static let report = DifferenceReport()
    override class func tearDown() { report.printSummary(title: "torchvision blocks vs PyTorch") }

    func compare(_ c: String, _ what: String, _ got: Tensor, _ want: Tensor, tolerance: Double = 1e-4,
                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, "\(c).\(what) shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        let d = relativeDifference(got, want)
        Self.report.record(c, what, d)
        XCTAssertLessThanOrEqual(d, tolerance, "\(c).\(what)", file: file, line: line)
    }

    /// Loads CASE.param.* into a store under `prefix.`, runs `forward` on a tape seeded with
    /// CASE.dy, and compares y, dx, gradients and running statistics.
    func runBlock(_ c: String, build: (ParameterStore, inout SeededGenerator) -> (Tensor, Pass) -> Tensor) throws {
        let f = try Fixtures.torchvision()
        let store = ParameterStore()
        var rng = SeededGenerator(seed: 1)
        let forward = build(store, &rng)
        store.seal()
        let prefix = "\(c).param."
        for name in f.names where name.hasPrefix(prefix) && !name.hasSuffix("num_batches_tracked") {
            try store.load("b." + name.dropFirst(prefix.count), f.tensor(name))
        }
        XCTAssertEqual(Set(store.floatStateDict().map { String($0.name.dropFirst(2)) }),
                       Set(f.names.filter { $0.hasPrefix(prefix) && !$0.hasSuffix("num_batches_tracked") }.map { String($0.dropFirst(prefix.count)) }),
                       "\(c): tensor names")
        let tape = Tape(backend: store.backend)
        let x = tape.watch(try f.tensor("\(c).x"))
        let y = forward(x, Pass.training(tape: tape))
        compare(c, "y", y, try f.tensor("\(c).y"))
        tape.backward(from: y, seed: try f.tensor("\(c).dy"))
        compare(c, "dx", tape.gradient(of: x) ?? Tensor(zeros: [0]), try f.tensor("\(c).dx"))
        for slot in store.parameterSlots {
            compare(c, "grad." + slot.name, store.gradientTensor(slot), try f.tensor("\(c).grad.\(slot.name.dropFirst(2))"))
        }
        for slot in store.bufferSlots {
            compare(c, "after." + slot.name, store.bufferTensor(slot), try f.tensor("\(c).after.\(slot.name.dropFirst(2))"))
        }
    }

    func testResidualBlocks() throws {
        let cases = try Fixtures.cases(try Fixtures.torchvision()).filter { $0.value["op"] as? String == "block" }
        XCTAssertEqual(cases.count, 4)
        for (c, m) in cases.sorted(by: { $0.key < $1.key }) {
            let (inplanes, planes) = (m["inplanes"] as! Int, m["planes"] as! Int)
            let (stride, dilation) = (m["stride"] as! Int, m["dilation"] as! Int)
            try runBlock(c) { store, rng in
                let block: ResidualBlock = m["kind"] as! String == "basic"
                    ? BasicBlock(store: store, name: "b", inplanes: inplanes, planes: planes, stride: stride, dilation: dilation, generator: &rng)
                    : Bottleneck(store: store, name: "b", inplanes: inplanes, planes: planes, stride: stride, dilation: dilation, generator: &rng)
                return { block($0, $1) }
            }
        }
    }

    func testASPPAndFCNHead() throws {
        try runBlock("aspp") { store, rng in
            let aspp = ASPP(store: store, name: "b", inputChannels: 8, rates: [1, 2, 3], outputChannels: 4, generator: &rng)
            return { aspp($0, $1) }
        }
        try runBlock("fcn_head") { store, rng in
            let head = FCNHead(store: store, name: "b", inputChannels: 8, classes: 3, generator: &rng)
            return { head($0, $1) }
        }
    }

    func testClassWeightedCrossEntropyWithIgnoredPixels() throws {
        let f = try Fixtures.torchvision(), c = "ce_weighted"
        let targets = IndexTensor(shape: [2, 5, 6], values: try f.tensor("\(c).target").storage.map { Int32($0) })
        let tape = Tape(backend: CPUBackend.shared)
        let logits = tape.watch(try f.tensor("\(c).logits"))
        let loss = try Pass.training(tape: tape).crossEntropy(logits, targets: targets, classWeights: try f.tensor("\(c).weight"))
        compare(c, "loss", loss, try f.tensor("\(c).loss"))
        tape.backward(from: loss)
        compare(c, "dlogits", tape.gradient(of: logits)!, try f.tensor("\(c).dlogits"))
    }

    func testMaxPoolWithPaddingAndCeilMode() throws {
        let f = try Fixtures.torchvision()
        let cases = try Fixtures.cases(f).filter { $0.value["op"] as? String == "max_pool2d" }
        XCTAssertEqual(cases.count, 3)
        for (c, m) in cases {
            let tape = Tape(backend: CPUBackend.shared)
            let x = tape.watch(try f.tensor("\(c).x"))
            let y = Pass.training(tape: tape).maxPool2d(x, kernel: m["kernel"] as! Int, stride: (m["stride"] as! Int),
                                                        padding: m["padding"] as! Int, ceilMode: m["ceil_mode"] as! Bool)
            compare(c, "y", y, try f.tensor("\(c).y"), tolerance: 0)
            tape.backward(from: y, seed: try f.tensor("\(c).dy"))
            compare(c, "dx", tape.gradient(of: x)!, try f.tensor("\(c).dx"), tolerance: 0)
        }
    }
}
