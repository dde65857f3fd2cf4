import XCTest
import SegCore
import SegNN
import SegTestSupport

/// The tape: gradients of values used twice are summed, parameter gradients are final when the
/// tape says so (whatever the registration order), and inference records nothing.
final class TapeTests: XCTestCase {
    func batch(_ model: SegmentationModel, size: Int = 8, seed: UInt64 = 3) -> (Tensor, Tensor) {
        var rng = SeededGenerator(seed: seed)
        let n = 2, k = model.classes, p = size * size
        let x = Tensor(shape: [n, model.inputChannels, size, size],
                       storage: (0..<(n * model.inputChannels * p)).map { _ in Float(rng.normal()) })
        var t = [Float](repeating: 0, count: n * k * p)
        for b in 0..<n { for q in 0..<p { t[(b * k + rng.integer(0, k)) * p + q] = 1 } }
        return (x, Tensor(shape: [n, k, size, size], storage: t))
    }

    /// Runs one recorded forward + backward; returns each parameter's gradient as it was when
    /// the tape declared it final, and the order of those declarations.
    func recordAndBackward(_ model: SegmentationModel, size: Int = 8) -> (snapshots: [Int: [Float]], order: [Int]) {
        let store = model.store
        store.zeroGradients()
        let (x, t) = batch(model, size: size)
        let tape = Tape(backend: store.backend)
        var snapshots: [Int: [Float]] = [:], order: [Int] = []
        tape.onParameterGradientReady = { index in
            order.append(index)
            snapshots[index] = store.gradientTensor(store.parameterSlots[index]).storage
        }
        let pass = Pass.training(tape: tape)
        let outputs = model.trainingOutputs(x, pass)
        var loss = pass.bceWithLogits(outputs[0].logits, targets: t)
        for (logits, weight) in outputs.dropFirst() { loss = pass.add(loss, pass.scaled(pass.bceWithLogits(logits, targets: t), by: weight)) }
        tape.backward(from: loss)
        return (snapshots, order)
    }

    func testAParameterGradientIsFinalWhenTheTapeSaysSo() {
        let models: [(String, SegmentationModel, Int)] = ModelArchitecture.allCases.map {
            ($0.rawValue, $0.make(inputChannels: 1, classes: 2, width: 3, seed: 1, auxiliary: $0.defaultBackboneDepth != nil),
             max(8, 1 << $0.downsamplings))
        } + [("probe_reversed", ReversedProbe(inputChannels: 1, classes: 2, width: 3, seed: 1), 8),
             ("probe_tied", TiedProbe(inputChannels: 1, classes: 2, width: 3, seed: 1), 8)]
        for (arch, model, size) in models {
            let (snapshots, order) = recordAndBackward(model, size: size)
            XCTAssertEqual(order.count, model.store.parameterSlots.count, "\(arch): every parameter is declared final once")
            XCTAssertEqual(Set(order).count, order.count, "\(arch): no parameter is declared twice")
            for slot in model.store.parameterSlots {
                XCTAssertEqual(snapshots[slot.index], model.store.gradientTensor(slot).storage,
                               "\(arch): \(slot.name) changed after it was declared final")
            }
        }
    }

    func testReadinessFollowsUseNotRegistration() {
        // registered head, mid, bn, stem; used stem, bn, mid, head: final in registration order
        let reversed = ReversedProbe(inputChannels: 1, classes: 2, width: 3, seed: 1)
        XCTAssertEqual(recordAndBackward(reversed).order, Array(0..<8))
        // stem 0,1  bn 2,3  shared 4,5 (used twice)  head 6,7
        let tied = TiedProbe(inputChannels: 1, classes: 2, width: 3, seed: 1)
        XCTAssertEqual(recordAndBackward(tied).order, [6, 7, 4, 5, 2, 3, 0, 1])
    }

    /// The loss of the whole tied model against central differences of its parameters: the
    /// shared convolution's gradient is the sum over both uses, the residual's input gradient
    /// the sum over both branches.
    func testTiedWeightsAndResidualsAgainstFiniteDifferences() {
        let model = TiedProbe(inputChannels: 1, classes: 2, width: 2, seed: 4)
        let store = model.store
        let (x, t) = batch(model, size: 6, seed: 9)
        func loss() -> Double {
            Double(Pass.inference().bceWithLogits(model.forward(x, Pass(backend: store.backend, training: true, tape: nil)),
                                                  targets: t).scalar)
        }
        store.zeroGradients()
        let tape = Tape(backend: store.backend)
        let pass = Pass.training(tape: tape)
        tape.backward(from: pass.bceWithLogits(model.forward(x, pass), targets: t))
        let analytic = store.gradients.storage
        for slot in store.parameterSlots where slot.name.hasPrefix("shared") || slot.name.hasPrefix("stem") {
            let original = store.parameterTensor(slot)
            var worst = 0.0, scale = 1e-3
            for i in 0..<min(slot.count, 12) {
                let h: Float = 1e-3
                func shifted(_ d: Float) -> Double {
                    var v = original.storage
                    v[i] += d
                    try! store.load(slot.name, Tensor(shape: slot.shape, storage: v))
                    return loss()
                }
                let numeric = (shifted(h) - shifted(-h)) / (2 * Double(h))
                try! store.load(slot.name, original)
                worst = max(worst, abs(numeric - Double(analytic[slot.offset + i])))
                scale = max(scale, abs(numeric))
            }
            XCTAssertLessThanOrEqual(worst / scale, 2e-2, "\(slot.name): worst \(worst), scale \(scale)")
        }
    }

    /// On the CPU a training batch norm keeps no output for backward: its ReLU mask comes from
    /// its input, and a convolution reading the output rebuilds it in its own backward.
    func testABatchNormOutputReadByAConvolutionIsNotKept() {
        let store = ParameterStore()
        var rng = SeededGenerator(seed: 5)
        let stem = Conv2d(store: store, name: "stem", inputChannels: 1, outputChannels: 4, kernelSize: 3, padding: 1, generator: &rng)
        let bn = BatchNorm2d(store: store, name: "bn", channels: 4, fusedReLU: true)
        let head = Conv2d(store: store, name: "head", inputChannels: 4, outputChannels: 2, kernelSize: 3, padding: 1, generator: &rng)
        store.seal()
        let x = Tensor(shape: [2, 1, 6, 6], storage: (0..<72).map { _ in Float(rng.normal()) })
        let t = Tensor(shape: [2, 2, 6, 6], storage: (0..<144).map { $0 % 3 == 0 ? 1 : 0 })
        func run(on backend: Backend) -> [Float] {
            store.move(to: backend)
            store.zeroGradients()
            let tape = Tape(backend: backend)
            let pass = Pass.training(tape: tape)
            var h = bn(stem(backend.upload(x), pass), pass)
            let loss = pass.bceWithLogits(head(h, pass), targets: backend.upload(t))
            if backend === CPUBackend.shared {
                XCTAssertTrue(h.isUniquelyOwned(), "the BN-ReLU output is held by the caller alone, not by the tape")
            }
            tape.backward(from: loss)
            store.move(to: CPUBackend.shared)
            return store.gradients.storage
        }
        let rebuilt = run(on: CPUBackend.shared)
        // the stand-in runs the generic path: batch norm keeps its output, the convolution reads it
        XCTAssertEqual(rebuilt, run(on: DeviceStandIn()), "the same gradients as with the output kept, bit for bit")
        XCTAssertTrue(rebuilt.contains { $0 != 0 })
    }

    /// A UNet evaluation pass lets each level go once read: at the full-resolution up block
    /// the skip, the upsampled map and the first convolution's output are alive, not also the
    /// second's (4 such maps before, with the skip and the upsampled map held to the block's end).
    func testAUNetEvaluationPassLetsEachLevelGoOnceRead() {
        let (w, side) = (4, 64)
        let model = UNet(inputChannels: 1, classes: 2, width: w, depth: 4, seed: 0)
        let x = Tensor(shape: [1, 1, side, side], storage: (0..<(side * side)).map { Float($0 % 7) / 7 })
        let map = w * side * side * 4   // bytes of one full-resolution map of the first level
        let baseline = HostMemoryMeter.liveBytes
        HostMemoryMeter.resetPeak()
        let y = model.forward(x, Pass.inference())
        let peak = HostMemoryMeter.peakBytes - baseline
        XCTAssertEqual(y.shape, [1, 2, side, side])
        XCTAssertLessThan(peak, 3 * map + map / 2, "peak \(peak) bytes against maps of \(map)")
        XCTAssertGreaterThanOrEqual(peak, 3 * map)
    }

    /// A residual join in an evaluation pass adds into its first input when nothing else holds
    /// it (the same values as relu(add), bit for bit: lanes, tails and spans over two workers),
    /// and leaves a shared one alone; a taped pass runs the two ops.
    func testAResidualJoinAddsInPlaceOnlyIntoWhatNobodyElseHolds() {
        let saved = Parallel.threads
        Parallel.configure(threads: 2)
        defer { Parallel.configure(threads: saved) }
        var rng = SeededGenerator(seed: 9)
        let count = 2 * 65_536 + 13   // two spans, each with a scalar tail
        let a0 = (0..<count).map { _ in Float(rng.normal()) }, b0 = (0..<count).map { _ in Float(rng.normal()) }
        let shape = [1, 1, 1, count]
        let expected = Pass.inference().relu(Pass.inference().add(Tensor(shape: shape, storage: a0), Tensor(shape: shape, storage: b0)))
        XCTAssertEqual(expected.storage, zip(a0, b0).map { max($0 + $1, 0) })
        let b = Tensor(shape: shape, storage: b0)
        var unique = Tensor(shape: shape, storage: a0)
        let address = unique.buffer.address
        let joined = Pass.inference().addReLU(consume unique, b)
        XCTAssertEqual(joined.buffer.address, address, "the sum is written where the first input was")
        XCTAssertEqual(joined.storage, expected.storage)
        let shared = Tensor(shape: shape, storage: a0)
        let other = Pass.inference().addReLU(shared, b)
        XCTAssertNotEqual(other.buffer.address, shared.buffer.address)
        XCTAssertEqual(shared.storage, a0, "a tensor someone else holds is not written")
        XCTAssertEqual(other.storage, expected.storage)
        // a taped pass runs the two ops (relu's backward reads its own output)
        let taped = Tensor(shape: shape, storage: a0), tapedAddress = taped.buffer.address
        let recorded = Pass.training(tape: Tape(backend: CPUBackend.shared)).addReLU(consume taped, b)
        XCTAssertNotEqual(recorded.buffer.address, tapedAddress)
        XCTAssertEqual(recorded.storage, expected.storage)
    }

    func testInferenceRecordsNothing() {
        let model = UNet(inputChannels: 1, classes: 2, width: 2, depth: 2, seed: 0)
        let tape = Tape(backend: model.store.backend)
        let y = model.forward(batch(model).0, Pass.inference())
        XCTAssertEqual(tape.count, 0)
        XCTAssertEqual(y.tapeIndex, -1, "an inference output is on no tape")
        let recorded = model.forward(batch(model).0, Pass.training(tape: tape))
        XCTAssertGreaterThan(tape.count, 20)
        XCTAssertTrue(tape.tracks(recorded))
    }

    /// Training-mode dropout draws each sample's mask from its place in the global batch: a batch
    /// of 4 gives what two halves give, whatever the split, and evaluation is the identity.
    func testDropoutMasksFollowTheSampleNotTheSplit() {
        var rng = SeededGenerator(seed: 11)
        let x = Tensor(shape: [4, 2, 3, 5], storage: (0..<120).map { _ in Float(rng.normal()) })
        func run(_ t: Tensor, first: Int) -> [Float] {
            var pass = Pass(backend: CPUBackend.shared, training: true, tape: nil)
            pass.randomness = PassRandomness(seed: 5, firstSample: first)
            return pass.dropout(t, p: 0.5).storage
        }
        let whole = run(x, first: 10)
        let halves = run(Tensor(shape: [2, 2, 3, 5], storage: Array(x.storage[0..<60])), first: 10)
            + run(Tensor(shape: [2, 2, 3, 5], storage: Array(x.storage[60..<120])), first: 12)
        XCTAssertEqual(whole, halves)
        let kept = zip(whole, x.storage).filter { $0.0 != 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0.0 - 2 * $0.1) < 1e-6 }, "kept values are scaled by 1 / (1 - p)")
        XCTAssertEqual(Double(kept.count) / 120, 0.5, accuracy: 0.15)
        XCTAssertNotEqual(run(x, first: 11), whole, "another sample position, another mask")
        XCTAssertEqual(Pass.inference().dropout(x, p: 0.5).storage, x.storage)
    }
}
