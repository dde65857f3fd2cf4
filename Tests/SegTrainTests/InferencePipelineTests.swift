import XCTest
import SegCore
import SegData
import SegNN
import SegTrain

/// The steps of the one path from an image to a mask, each against the same step done by hand.
final class InferencePipelineTests: XCTestCase {
    let model = UNet(inputChannels: 1, classes: 3, width: 2, depth: 4, seed: 5)

    func config(_ settings: [String]) throws -> TrainingConfig {
        var c = TrainingConfig()
        for s in ["classes=3", "loss=ce"] + settings { try c.override(s) }
        return c
    }

    func image(_ h: Int, _ w: Int) -> [Float] { (0..<(h * w)).map { Float(($0 * 37) % 101) / 100 } }

    /// softmax probabilities of the model on one (1, 1, h, w) input, on the host.
    func probabilities(_ x: [Float], _ h: Int, _ w: Int) -> [Float] {
        let logits = model.forward(Tensor(shape: [1, 1, h, w], storage: x), training: false)
        return CPUBackend.shared.activate(logits, .softmax).storage
    }

    func testASmallImageIsPaddedForTheModelAndCroppedBack() throws {
        let pipeline = InferencePipeline(config: try config([]), models: [model])
        let (h, w) = (5, 9)   // the UNet halves 4 times: it needs 16 a side
        let p = try pipeline.predict(image(h, w), height: h, width: w)
        XCTAssertEqual(p.probabilities.shape, [3, h, w])
        var padded = [Float](repeating: 0, count: 16 * 16)
        for y in 0..<h { for x in 0..<w { padded[y * 16 + x] = image(h, w)[y * w + x] } }
        let whole = probabilities(padded, 16, 16)
        for k in 0..<3 { for y in 0..<h { for x in 0..<w {
            XCTAssertEqual(p.probabilities.storage[(k * h + y) * w + x], whole[(k * 16 + y) * 16 + x])
        } } }
    }

    func testResizeRunsTheModelAtItsSizeAndResizesTheProbabilitiesBack() throws {
        let pipeline = InferencePipeline(config: try config(["resize=16x24"]), models: [model])
        let (h, w) = (20, 30)
        let p = try pipeline.predict(image(h, w), height: h, width: w)
        let small = resizedPlanes(image(h, w), planes: 1, height: h, width: w, toHeight: 16, toWidth: 24)
        let back = resizedPlanes(probabilities(small, 16, 24), planes: 3, height: 16, width: 24, toHeight: h, toWidth: w)
        XCTAssertEqual(p.probabilities.storage, back)
        XCTAssertEqual(p.classes, decideClasses(back, classes: 3))
        XCTAssertEqual(ResizeRule("shorter:32")?.size(height: 48, width: 64).height, 32)
        XCTAssertEqual(ResizeRule("shorter:32")?.size(height: 48, width: 64).width, 43)
        XCTAssertNil(ResizeRule("32"))
    }

    func testFlipsAverageTheFourMirroredPredictions() throws {
        let pipeline = InferencePipeline(config: try config(["tta=flip"]), models: [model])
        let (h, w) = (16, 20)
        let x = image(h, w)
        func mirror(_ v: [Float], _ planes: Int, _ horizontal: Bool, _ vertical: Bool) -> [Float] {
            var out = v
            for c in 0..<planes { for y in 0..<h { for xx in 0..<w {
                out[(c * h + y) * w + xx] = v[(c * h + (vertical ? h - 1 - y : y)) * w + (horizontal ? w - 1 - xx : xx)]
            } } }
            return out
        }
        var sum = [Float](repeating: 0, count: 3 * h * w)
        for (a, b) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = mirror(probabilities(mirror(x, 1, a, b), h, w), 3, a, b)
            for i in sum.indices { sum[i] += p[i] }
        }
        let got = try pipeline.predict(x, height: h, width: w).probabilities.storage
        for i in sum.indices { XCTAssertEqual(got[i], sum[i] * 0.25, accuracy: 1e-7) }
    }

    func testOneRuleFromProbabilitiesToClasses() {
        // one channel: above 0.5; several: the most probable, the first on ties
        XCTAssertEqual(decideClasses([0.2, 0.5, 0.51], classes: 1), [0, 0, 1])
        XCTAssertEqual(decideClasses([0.6, 0.5, 0.2, /* class 1 */ 0.4, 0.5, 0.9], classes: 2), [0, 0, 1])
        // two sigmoid channels that are both above 0.5 still give one class
        XCTAssertEqual(decideClasses([0.7, /* class 1 */ 0.8], classes: 2), [1])
    }

    func testScoresCountEveryLabelledPixelOnce() {
        var scores = SegmentationScores(classes: 3)
        scores.add(predicted: [0, 1, 2, 2, 1], labels: [0, 1, 1, Sample.ignored, 2])
        XCTAssertEqual(scores.classPixelCounts, [[1, 1, 1], [1, 2, 2], [0, 1, 1]])
        var single = SegmentationScores(classes: 1)
        single.add(predicted: [1, 0, 1], labels: [1, 1, 0])
        XCTAssertEqual(single.classPixelCounts, [[1, 2, 2]])
    }
}
