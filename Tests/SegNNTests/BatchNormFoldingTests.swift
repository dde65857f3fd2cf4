import XCTest
import SegCore
import SegNN
import SegKernels

/// Evaluation passes fold each convolution's batch norm (and its ReLU) into the convolution
/// (`Pass.conv2dBatchNorm`); a pass that counts its work runs the two ops unfused. Both must
/// give the same logits, on models with every kind of conv + BN site: the UNet's double
/// convolutions, ResNet-50's bottlenecks, stem and projections with FCN's head, MobileNetV3's
/// conv + BN + hardswish blocks. The UNet's up-path convolutions read their concatenated input
/// (skip, upsampled) in place when folded, and from the built concatenation when not.
final class BatchNormFoldingTests: XCTestCase {
    func testFoldedEvaluationPassMatchesConvolutionThenBatchNorm() {
        // three workers: the Winograd transforms split channel ranges across a concatenation's parts
        let threads = Parallel.threads
        Parallel.configure(threads: 3)
        defer { Parallel.configure(threads: threads) }
        for (architecture, width) in [(ModelArchitecture.unet, 8), (.fcn_resnet50, 8), (.lraspp_mobilenet_v3_large, 8)] {
            let model = architecture.make(inputChannels: 3, classes: 2, width: width, seed: 3)
            var rng = SeededGenerator(seed: 5)
            let x = Tensor(shape: [2, 3, 32, 32], storage: (0..<(2 * 3 * 32 * 32)).map { _ in rng.uniform(-1, 1) })
            // training passes move the running statistics away from 0 and 1
            for _ in 0..<3 { _ = model.forward(x, Pass(backend: model.store.backend, training: true, tape: nil)) }
            let folded = model.forward(x, .inference()).storage
            var unfused = Pass.inference()
            unfused.work = ConvolutionWork()
            let reference = model.forward(x, unfused).storage
            let scale = reference.map { abs($0) }.max()!
            XCTAssertGreaterThan(scale, 0, "\(architecture)")
            let worst = zip(folded, reference).map { abs($0 - $1) }.max()! / scale
            XCTAssertLessThan(worst, 1e-5, "\(architecture): folded vs unfused evaluation pass")
        }
    }
}
