import XCTest
import SegCore
import SegNN
import SegKernels

final class ParameterLayoutTests: XCTestCase {
    func testParametersAreOneContiguousBufferInForwardOrder() {
        let model = UNet(inputChannels: 1, classes: 2, width: 4, seed: 0)
        let slots = model.store.parameterSlots
        XCTAssertEqual(slots.first?.name, "inc.conv.conv.0.weight")
        XCTAssertEqual(slots.last?.name, "outc.conv.bias")
        var next = 0
        for s in slots { XCTAssertEqual(s.offset, next, s.name); next += s.count }
        XCTAssertEqual(next, model.store.parameterCount)
        XCTAssertEqual(model.store.counterNames.count, 18)  // 9 double convs x 2 BatchNorms
    }

    func testTheLabModelHasTheReferenceParameterCount() {
        // torch_unet.py: UNet(1, 2, w=64) has 13,394,242 parameters.
        XCTAssertEqual(UNet(inputChannels: 1, classes: 2, width: 64, seed: 0).store.parameterCount, 13_394_242)
    }

    func testInitialisationFollowsPyTorchDefaultsAndTheSeed() {
        let a = UNet(inputChannels: 1, classes: 2, width: 4, seed: 3), b = UNet(inputChannels: 1, classes: 2, width: 4, seed: 3)
        let c = UNet(inputChannels: 1, classes: 2, width: 4, seed: 4)
        let pa = a.store.floatStateDict(), pb = b.store.floatStateDict(), pc = c.store.floatStateDict()
        XCTAssertEqual(pa.map(\.tensor), pb.map(\.tensor), "same seed, same model")
        XCTAssertNotEqual(pa.map(\.tensor), pc.map(\.tensor), "another seed, another model")
        for (name, t) in pa {
            let parts = name.split(separator: ".")
            let isBatchNorm = name.hasPrefix("outc") ? false : ["1", "4"].contains(parts[parts.count - 2])
            if name.hasSuffix("running_var") || isBatchNorm && name.hasSuffix("weight") {
                XCTAssertTrue(t.storage.allSatisfy { $0 == 1 }, name)
            } else if name.hasSuffix("running_mean") || isBatchNorm && name.hasSuffix("bias") {
                XCTAssertTrue(t.storage.allSatisfy { $0 == 0 }, name)
            } else {
                // conv weight and bias: uniform in +-1/sqrt(fan_in)
                let slot = a.store.parameterSlot(named: name.replacingOccurrences(of: ".bias", with: ".weight"))!
                let fanIn = slot.shape[1] * slot.shape[2] * slot.shape[3]
                let bound = 1 / Float(fanIn).squareRoot()
                XCTAssertTrue(t.storage.allSatisfy { abs($0) <= bound }, name)
                if t.count >= 64 { XCTAssertGreaterThan(t.storage.map(abs).max()!, 0.8 * bound, name) }
            }
        }
    }

    /// A model built to be loaded right away (predict, eval, export) skips its random draws:
    /// its weights start at zero, its fixed values (batch norm's 1s, running variance) are as
    /// usual, and nothing outside the scope changes.
    func testAModelBuiltForLoadingDrawsNothing() {
        let model = { ModelArchitecture.fcn_resnet50.make(inputChannels: 3, classes: 2, width: 4, seed: 1, auxiliary: false) }
        let skipped = RandomInitialization.skipping(model).store.floatStateDict()
        let drawn = model().store.floatStateDict()
        XCTAssertEqual(skipped.map(\.name), drawn.map(\.name))
        var convolutions = 0
        for ((name, a), (_, b)) in zip(skipped, drawn) {
            if name.hasSuffix("running_var") || (name.contains("bn") && name.hasSuffix(".weight")) {
                XCTAssertEqual(a, b, "\(name): a fixed starting value")
            } else if name.hasSuffix("conv1.weight") || name.hasSuffix("conv2.weight") {
                XCTAssertTrue(a.storage.allSatisfy { $0 == 0 }, "\(name): not drawn")
                XCTAssertTrue(b.storage.contains { $0 != 0 }, "\(name): drawn outside the scope")
                convolutions += 1
            }
        }
        XCTAssertEqual(convolutions, 33, "the stem and 16 bottlenecks x 2 checked")
        var generator = SeededGenerator(seed: 9), untouched = generator
        let zeros = RandomInitialization.skipping { kaimingNormalFanOut(count: 5, fanOut: 3, generator: &generator) }
        XCTAssertEqual(zeros, [Float](repeating: 0, count: 5))
        XCTAssertEqual(generator.next(), untouched.next(), "the generator did not move")
        XCTAssertEqual(model().store.floatStateDict().map(\.tensor), drawn.map(\.tensor), "the same seed draws the same after the scope")
    }

    func testLoadRejectsUnknownNamesAndWrongShapes() {
        let model = UNet(inputChannels: 1, classes: 2, width: 4, seed: 0)
        XCTAssertThrowsError(try model.store.load("inc.conv.conv.9.weight", Tensor(zeros: [1]))) {
            XCTAssertTrue("\($0)".contains("no tensor named 'inc.conv.conv.9.weight'"))
        }
        XCTAssertThrowsError(try model.store.load("outc.conv.bias", Tensor(zeros: [3]))) {
            XCTAssertTrue("\($0)".contains("shape [3]"))
        }
    }

    func testAnyInputSizeIsPaddedBackToTheSkip() {
        for arch in ModelArchitecture.allCases {
            let model = arch.make(inputChannels: 3, classes: 4, width: 2, seed: 1)
            let y = model.forward(Tensor(zeros: [1, 3, 37, 21]), training: false)
            XCTAssertEqual(y.shape, [1, 4, 37, 21], arch.rawValue)
        }
    }
}
