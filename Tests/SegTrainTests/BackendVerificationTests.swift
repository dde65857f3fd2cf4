import XCTest
import SegCore
import SegTrain
import SegTestSupport

/// `Verification` — every op, loss, optimizer and whole-model PyTorch fixture through the
/// `Backend` API (the CPU backend calls the SegKernels kernels directly) — on the CPU backend (which also checks the harness `segdist verify` runs on
/// GPU nodes) and on the CUDA backend where a GPU is usable (ops within 1e-4, models 1e-3).
final class BackendVerificationTests: XCTestCase {
    func verify(_ backend: Backend, label: String) throws {
        let file = try Fixtures.reference()
        let ops = try Verification.ops(backend, file: file), models = try Verification.models(backend, file: file)
        let groups = Set(ops.map(\.group))
        XCTAssertEqual(groups, ["conv2d", "conv_transpose2d", "max_pool2d", "bilinear", "pad", "batch_norm", "adaptive_avg_pool2d",
                                "losses", "optimizers"], "every kind of op fixture is run")
        XCTAssertEqual(ops.filter { $0.group == "conv2d" }.count, 6 * 4 - 1, "6 convolution cases (one without bias)")
        XCTAssertEqual(Set(models.map { $0.name.split(separator: ".").first.map(String.init) ?? "" }).isSuperset(of: ["unet_w4", "unet_add_w4", "unet_shallow_w4"]), true)
        for f in ops + models { XCTAssertLessThanOrEqual(f.difference, f.tolerance, "\(label) \(f.name)") }
        print("== \(label) backend vs PyTorch ==\n" + Verification.summary(ops + models).text)
    }

    func testCPUBackendMatchesPyTorch() throws { try verify(CPUBackend.shared, label: "cpu") }

    func testEveryFixtureCaseIsRun() throws {
        for (name, meta) in try Verification.cases(try Fixtures.reference()) {
            XCTAssertTrue(Verification.knownKinds.contains(meta["op"] as? String ?? ""), "fixture case \(name) is not run")
        }
    }

    func testCUDABackendMatchesPyTorch() throws {
        let gpu = try CUDATesting.backendOrSkip("PyTorch fixtures on the CUDA backend")
        try verify(gpu, label: "cuda")
    }
}
