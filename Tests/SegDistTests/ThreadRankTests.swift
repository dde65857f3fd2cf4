import XCTest
import SegCore
import SegDist
import SegNN
import SegTrain
import SegTestSupport

/// The distributed logic with ranks as threads (`ThreadCommunicator`): the collectives, the
/// start agreement, the gradient buckets, synchronized batch norm and a whole data-parallel step,
/// each checked against one process in milliseconds. `DistributedTests` runs the same ideas
/// through `mpirun` and the real executable.
final class ThreadRankTests: XCTestCase {
    func testCollectivesHaveMPIsMeaning() throws {
        let results = try ThreadCommunicator.run(ranks: 3) { comm -> (Double, Double, String, [Float]) in
            let total = comm.sum(Double(comm.rank + 1))
            let largest = comm.maximum(Double(10 - comm.rank))
            let text = comm.broadcast(string: comm.rank == 1 ? "from rank one" : "", root: 1)
            var values: [Float] = [Float(comm.rank), 1, -2]
            values.withUnsafeMutableBufferPointer { comm.sumInPlace($0.baseAddress!, count: 3) }
            return (total, largest, text, values)
        }
        for r in results {
            XCTAssertEqual(r.0, 6); XCTAssertEqual(r.1, 10); XCTAssertEqual(r.2, "from rank one")
            XCTAssertEqual(r.3, [3, 3, -6])
        }
    }

    /// One rank's bad file becomes every rank's error, naming the lowest failing rank.
    func testAgreementGivesEveryRankTheLowestFailingRanksMessage() throws {
        struct Failure: Error, CustomStringConvertible { let description: String }
        let messages = try ThreadCommunicator.run(ranks: 4) { comm -> String in
            let local: Error? = comm.rank >= 2 ? Failure(description: "rank \(comm.rank)'s file is missing") : nil
            do { try comm.agree(local); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(Set(messages), ["rank 2: rank 2's file is missing"])
        let clean = try ThreadCommunicator.run(ranks: 3) { comm -> Bool in (try? comm.agree(nil)) != nil }
        XCTAssertEqual(clean, [true, true, true])
    }

    /// Parameters made ready in any order, buckets smaller than a parameter and spanning two:
    /// every rank ends with the sum of every rank's gradients, bucket for bucket.
    func testTheGradientReducerSumsEveryBucketWhateverTheReadyOrder() throws {
        let ranges = [0..<5, 5..<6, 6..<13, 13..<20]
        let sums = try ThreadCommunicator.run(ranks: 3) { comm -> [Float] in
            let gradients = Tensor(shape: [20], storage: (0..<20).map { Float($0 * (comm.rank + 1)) })
            let reducer = GradientReducer(communicator: comm, gradients: gradients, parameterRanges: ranges, bucketElements: 4)
            reducer.begin()
            for p in [3, 1, 0] { reducer.parameterReady(p) }   // parameter 2 left for finish
            reducer.finish()
            return gradients.storage
        }
        let expected = (0..<20).map { Float($0 * 6) }
        for s in sums { XCTAssertEqual(s, expected) }
    }

    /// Synchronized batch norm on the CPU (the group's sums between the kernel's stages): two
    /// ranks holding half the batch each get the output, running statistics and input gradient
    /// of one process holding it all; the parameter gradients sum to one process's.
    func testSynchronizedBatchNormOnTwoRanksEqualsOneBatch() throws {
        let (n, c, h, w) = (4, 3, 5, 6)
        var rng = SeededGenerator(seed: 7)
        let x = Tensor(shape: [n, c, h, w], storage: (0..<(n * c * h * w)).map { _ in rng.uniform(-1, 3) })
        let dy = Tensor(shape: [n, c, h, w], storage: (0..<(n * c * h * w)).map { _ in rng.uniform(-0.5, 0.5) })
        let gamma = Tensor(shape: [c], storage: [0.5, 1.5, -1]), beta = Tensor(shape: [c], storage: [0.1, 0, -0.2])
        func run(_ x: Tensor, _ dy: Tensor, group: CollectiveSum?) -> (y: [Float], mean: [Float], dx: [Float], dg: [Float], db: [Float]) {
            let backend = CPUBackend.shared
            let runningMean = Tensor(zeros: [c]), runningVar = Tensor(repeating: 1, shape: [c])
            let (y, stats) = backend.batchNormTrainForward(x, gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                                                           momentum: 0.1, eps: 1e-5, relu: true, group: group)
            let dg = Tensor(zeros: [c]), db = Tensor(zeros: [c])
            let dx = backend.batchNormTrainBackward(x: x, y: y, dy: dy, gamma: gamma, statistics: stats, gammaGradient: dg,
                                                    betaGradient: db, relu: true, group: group)
            return (y.storage, runningMean.storage + runningVar.storage, dx.storage, dg.storage, db.storage)
        }
        let whole = run(x, dy, group: nil)
        let half = n / 2 * c * h * w
        func part(_ t: Tensor, _ r: Int) -> Tensor { Tensor(shape: [n / 2, c, h, w], storage: Array(t.storage[(r * half)..<((r + 1) * half)])) }
        let parts = try ThreadCommunicator.run(ranks: 2) { comm in run(part(x, comm.rank), part(dy, comm.rank), group: comm) }
        assertClose(parts[0].y + parts[1].y, whole.y, 1e-5)
        assertClose(parts[0].dx + parts[1].dx, whole.dx, 1e-5)
        assertClose(parts[0].mean, whole.mean, 1e-6); assertClose(parts[1].mean, whole.mean, 1e-6)
        assertClose(zip(parts[0].dg, parts[1].dg).map(+), whole.dg, 1e-4)
        assertClose(zip(parts[0].db, parts[1].db).map(+), whole.db, 1e-4)
    }

    /// Three steps of a UNet with synchronized batch norm on 2 thread ranks equal one process
    /// taking the whole batch: the parameters after each step and the reported loss.
    func testADataParallelStepOnTwoRanksEqualsOneRank() throws {
        try assertTwoRanksEqualOne(bucketElements: 100) { UNet(inputChannels: 1, classes: 2, width: 2, depth: 2, seed: 11) }
    }

    /// Gradient buckets start from the tape's readiness signal, so a model whose parameters are
    /// registered in the reverse of their use, and one that applies a convolution twice around a
    /// residual sum, train on 2 ranks exactly as on 1 — with buckets far smaller than a layer,
    /// so an early start on a partial gradient would show.
    func testParameterOrderAndReuseDoNotChangeTwoRanks() throws {
        try assertTwoRanksEqualOne(bucketElements: 7) { ReversedProbe(inputChannels: 1, classes: 2, width: 4, seed: 2) }
        try assertTwoRanksEqualOne(bucketElements: 7) { TiedProbe(inputChannels: 1, classes: 2, width: 4, seed: 2) }
    }

    /// LR-ASPP on MobileNetV3 (depthwise convolutions, squeeze-and-excitation, hardswish) with
    /// synchronized batch norm: 2 ranks equal 1.
    func testMobileNetLRASPPOnTwoRanksEqualsOneRank() throws {
        try assertTwoRanksEqualOne(bucketElements: 1000, size: 32, tolerance: 1e-4) {
            LRASPP(inputChannels: 1, classes: 2, width: 4, seed: 5)
        }
    }

    private func assertTwoRanksEqualOne(bucketElements: Int, size: Int = 16, tolerance: Float = 2e-5,
                                        _ make: @escaping () -> SegmentationModel,
                                        file: StaticString = #filePath, line: UInt = #line) throws {
        let batch = 4
        var rng = SeededGenerator(seed: 3)
        let images = Tensor(shape: [batch, 1, size, size], storage: (0..<(batch * size * size)).map { _ in rng.nextUnit() })
        var targets = Tensor(zeros: [batch, 2, size, size])
        for b in 0..<batch { for p in 0..<(size * size) {
            let on = images.storage[b * size * size + p] > 0.5
            targets.storage[(b * 2 + (on ? 1 : 0)) * size * size + p] = 1
        } }
        func slice(_ t: Tensor, _ r: Range<Int>) -> Tensor {
            let per = t.count / t.shape[0]
            return Tensor(shape: [r.count] + t.shape.dropFirst(), storage: Array(t.storage[(r.lowerBound * per)..<(r.upperBound * per)]))
        }
        func train(_ comm: Communicator) throws -> ([Float], [Float]) {
            let model = make()
            let trainer = Trainer(model: model, optimizer: try SGD(momentum: 0.9, weightDecay: 5e-4), loss: .bce,
                                  schedule: LearningRateSchedule(base: 0.05))
            let step = try DataParallelStep(trainer: trainer, communicator: comm, globalBatch: batch, microBatch: 0,
                                            bucketElements: bucketElements)
            if comm.size > 1 { step.batchNormGroup = comm }   // synchronized batch norm: N ranks = 1
            var losses: [Float] = []
            for _ in 0..<3 { losses.append(try step.step { (slice(images, $0), slice(targets, $0)) }) }
            return (model.store.parameters.storage, losses)
        }
        let one = try train(LocalCommunicator())
        let two = try ThreadCommunicator.run(ranks: 2) { try train($0) }
        for r in two {
            assertClose(r.0, one.0, tolerance, file: file, line: line)
            assertClose(r.1, one.1, 1e-5, file: file, line: line)
        }
        XCTAssertEqual(two[0].0, two[1].0, "the ranks' parameters differ", file: file, line: line)
    }

    private func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "largest relative difference \(worst)", file: file, line: line)
    }
}
