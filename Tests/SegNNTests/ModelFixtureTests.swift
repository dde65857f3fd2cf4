import XCTest
import SegCore
import SegNN
import SegTestSupport

/// The three whole-model fixture cases: PyTorch's weights loaded under the reference names,
/// then logits, loss, every parameter gradient and the running statistics compared.
final class ModelFixtureTests: XCTestCase {
    static let report = DifferenceReport()
    override class func tearDown() { report.printSummary(title: "models vs PyTorch") }

    func runCase(_ c: String, architecture: ModelArchitecture) throws {
        let file = try Fixtures.reference()
        let model = architecture.make(inputChannels: 1, classes: 2, width: 4, seed: 0)
        let store = model.store
        let prefix = "\(c).param."
        let paramNames = file.names.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        // Every reference tensor has a home in the model and every model tensor is in the reference.
        let modelNames = store.floatStateDict().map(\.name)
        XCTAssertEqual(Set(paramNames), Set(modelNames), "\(c): model tensor names differ from the reference state_dict")
        for name in paramNames { try store.load(name, file.tensor(prefix + name)) }

        let x = try file.tensor("\(c).x"), target = try file.tensor("\(c).target")
        // forward-only model: the tape records the pass and derives every gradient
        let tape = Tape(backend: store.backend)
        let pass = Pass.training(tape: tape)
        let logits = model.forward(x, pass)
        let lossValue = pass.bceWithLogits(logits, targets: target)
        tape.backward(from: lossValue)
        let loss = lossValue.scalar

        func compare(_ what: String, _ got: Tensor, _ want: Tensor, tolerance: Double = 1e-3) {
            XCTAssertEqual(got.shape, want.shape, "\(c).\(what)")
            guard got.shape == want.shape else { return }
            let d = relativeDifference(got, want)
            Self.report.record("\(c) \(what.split(separator: ".").first!)", what, d)
            XCTAssertLessThanOrEqual(d, tolerance, "\(c).\(what)")
        }
        compare("logits", logits, try file.tensor("\(c).logits"))
        compare("loss", Tensor(shape: [], storage: [loss]), try file.tensor("\(c).loss"))
        for slot in store.parameterSlots {
            let got = store.gradientTensor(slot), want = try file.tensor("\(c).grad.\(slot.name)")
            if slot.name.hasSuffix(".0.bias") || slot.name.hasSuffix(".3.bias") {
                // A bias right before a training-mode BatchNorm has an exactly-zero gradient;
                // both frameworks hold rounding noise there, so compare it on the scale of the
                // same convolution's weight gradient instead.
                let weightName = slot.name.replacingOccurrences(of: ".bias", with: ".weight")
                let scale = try file.tensor("\(c).grad.\(weightName)").storage.map { abs(Double($0)) }.max()!
                let d = zip(got.storage, want.storage).map { abs(Double($0) - Double($1)) }.max()! / scale
                Self.report.record("\(c) grad (bias before BN, vs weight-grad scale)", slot.name, d)
                XCTAssertLessThanOrEqual(d, 1e-4, "\(c).grad.\(slot.name)")
            } else {
                compare("grad.\(slot.name)", got, want)
            }
        }
        for slot in store.bufferSlots {
            compare("after.\(slot.name)", store.bufferTensor(slot), try file.tensor("\(c).after.\(slot.name)"))
        }
        XCTAssertTrue(store.counters.allSatisfy { $0 == 1 }, "every BatchNorm counts one tracked batch")
    }

    func testUNet() throws { try runCase("unet_w4", architecture: .unet) }
    func testUNetAdd() throws { try runCase("unet_add_w4", architecture: .unet_add) }
    func testUNetShallow() throws { try runCase("unet_shallow_w4", architecture: .unet_shallow) }
}
