import XCTest
import SegNN
import Foundation
import SegTrain
import SegTestSupport

final class ConfigTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func parse(_ text: String) throws -> TrainingConfig {
        var c = TrainingConfig()
        try c.apply(text: text, source: "test.cfg")
        return c
    }

    func assertError(_ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) {
            XCTAssertEqual("\($0)", expected, file: file, line: line)
        }
    }

    func testTheBuiltInDefaultEqualsConfigsUnetCfg() throws {
        let fromFile = try TrainingConfig.load(path: Self.root + "/configs/unet.cfg")
        XCTAssertEqual(fromFile, TrainingConfig())
        XCTAssertEqual(fromFile.rendered(), TrainingConfig().rendered())
    }

    /// The binary carries configs/ (a packed segdist far from this repository finds them too):
    /// `--config unet.cfg` works from any directory, a file path still wins.
    func testShippedRecipesAreBuiltInAndFoundByName() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root + "/configs").filter { $0.hasSuffix(".cfg") }
        XCTAssertEqual(Set(shippedRecipes.keys), Set(files), "run configs/embed.sh after adding a recipe")
        for name in files {
            let text = try String(contentsOfFile: Self.root + "/configs/" + name, encoding: .utf8)
            XCTAssertEqual(shippedRecipes[name].map { $0 + "\n" }, text, "\(name) differs from its built-in copy: run configs/embed.sh")
            XCTAssertEqual(try TrainingConfig.load(recipe: name, checkingData: false), try TrainingConfig.load(path: Self.root + "/configs/" + name, checkingData: false))
        }
        XCTAssertEqual(try TrainingConfig.load(recipe: "deeplabv3").model, .deeplabv3_resnet50, "the .cfg may be left out")
        XCTAssertThrowsError(try TrainingConfig.load(recipe: "unet_tiny.cfg")) {
            XCTAssertTrue("\($0)".hasPrefix("unet_tiny.cfg: no such file, nor a shipped recipe (those are: deeplabv3.cfg, deeplabv3_mobilenet.cfg, deeplabv3plus.cfg, fcn8s.cfg"), "\($0)")
        }
        let elsewhere = NSTemporaryDirectory() + "segdist-recipes-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        let shown = try runSegdist(["config", "--config", "unet_lab.cfg"], in: elsewhere)
        XCTAssertEqual(shown.code, 0, shown.stderr)
        XCTAssertTrue(shown.stdout.contains("width: 64    #"), shown.stdout)
        try "model: unet_shallow\n".write(toFile: elsewhere + "/unet_lab.cfg", atomically: true, encoding: .utf8)
        XCTAssertTrue(try runSegdist(["config", "--config", "unet_lab.cfg"], in: elsewhere).stdout.contains("model: unet_shallow"), "a file wins")
    }

    func testALongBadLineIsAbbreviatedInItsMessage() throws {
        let long = String(repeating: "x", count: 1_000_000)
        XCTAssertThrowsError(try parse(long + "\n")) { XCTAssertLessThan("\($0)".count, 200, "a 1 MB line is not echoed whole") }
        var c = TrainingConfig()
        XCTAssertThrowsError(try c.override(long)) { XCTAssertLessThan("\($0)".count, 200) }
    }

    func testEveryShippedRecipeParses() throws {
        let lab = try TrainingConfig.load(path: Self.root + "/configs/unet_lab.cfg")
        XCTAssertEqual([lab.width, lab.batchSize, lab.epochs, lab.stepsPerEpoch], [64, 32, 5, 50])
        XCTAssertEqual(try TrainingConfig.load(path: Self.root + "/configs/unet_add.cfg").model, .unet_add)
        XCTAssertEqual(try TrainingConfig.load(path: Self.root + "/configs/unet_shallow.cfg").model, .unet_shallow)
    }

    func testValuesCommentsAndQuotes() throws {
        let c = try parse("""
            # a comment
            model: unet_shallow   # trailing comment
            lr: 0.05
            checkpoint_dir: "runs/x"
            border: 12
            squares: true
            classes: 3
            loss: bce+dice
            """)
        XCTAssertEqual(c.model, .unet_shallow)
        XCTAssertEqual(c.lr, 0.05)
        XCTAssertEqual(c.checkpointDir, "runs/x")
        XCTAssertEqual(c.border, 12)
        XCTAssertEqual(c.loss, .bceDice)
        XCTAssertEqual(try parse("border: auto").effectiveBorder, 20)
        // a #RRGGBB colour is a value, not a comment; a quoted # too
        var colours = TrainingConfig()
        try colours.apply(text: "classes: 3\nclass_colors: #000000, #80FF00,#0000c8   # three\nignore_color: '#E0E0C0'\n#comment\n",
                          source: "test.cfg", checkingData: false)
        XCTAssertEqual(colours.classColors, [[0, 0, 0], [128, 255, 0], [0, 0, 200]])
        XCTAssertEqual(colours.ignoreColor, [224, 224, 192])
    }

    func testErrorsNameTheFileLineAndKey() {
        assertError("lr: 0.1\nlearning_rate: 0.1", "test.cfg:2: unknown key 'learning_rate' (did you mean 'lr'?)")
        assertError("batchsize: 4", "test.cfg:1: unknown key 'batchsize' (did you mean 'batch_size'?)")
        assertError("momentun: 0.5", "test.cfg:1: unknown key 'momentun' (did you mean 'momentum'?)")
        assertError("\n\nlr: fast", "test.cfg:3: lr: expected a number, got 'fast'")
        assertError("lr: -0.1", "test.cfg:1: lr: must be positive, got -0.1")
        assertError("batch_size: 0", "test.cfg:1: batch_size: must be in 1...100000, got 0")
        assertError("width: 2.5", "test.cfg:1: width: expected a whole number, got '2.5'")
        let models = ModelArchitecture.allCases.map(\.rawValue).filter { !$0.hasPrefix("probe_") }
        XCTAssertEqual(Array(models.prefix(3)), ["unet", "unet_add", "unet_shallow"])
        assertError("model: resnet", "test.cfg:1: model: must be one of \(models.joined(separator: ", ")), got 'resnet'")
        assertError("class_weights: 1, x", "test.cfg:1: class_weights: expected comma-separated numbers or none, got 'x'")
        assertError("squares: yes", "test.cfg:1: squares: expected true or false, got 'yes'")
        assertError("lr 0.1", "test.cfg:1: expected 'key: value', got 'lr 0.1'")
        assertError("lr: 0.1\nlr: 0.2", "test.cfg:2: lr: set twice (first on line 1)")
        assertError("seed:", "test.cfg:1: seed: has no value")
        assertError("image_size: 8", "test.cfg: image_size: unet halves the image 4 times, so it needs at least 16 pixels, got 8")
        assertError("data: rgb_shapes", "test.cfg: in_channels: data rgb_shapes has 3 channel(s), but in_channels is 1")
        assertError("squares: true", "test.cfg: classes: the synthetic data has 3 classes (background, discs, squares), but classes is 2")
        assertError("radius_min: 50", "test.cfg: radius_min: must be below radius_max (50), got 50")
    }

    func testMissingFileAndOverrides() throws {
        XCTAssertThrowsError(try TrainingConfig.load(path: "/nonexistent/x.cfg")) {
            XCTAssertEqual("\($0)", "/nonexistent/x.cfg: no such file")
        }
        var c = TrainingConfig()
        try c.override("lr=0.01")
        try c.override(" width = 8 ")
        XCTAssertEqual(c.lr, 0.01)
        XCTAssertEqual(c.width, 8)
        XCTAssertThrowsError(try c.override("epoch=3")) { XCTAssertEqual("\($0)", "--set: unknown key 'epoch' (did you mean 'epochs'?)") }
        XCTAssertThrowsError(try c.override("lr")) { XCTAssertEqual("\($0)", "--set: expected key=value, got 'lr'") }
    }

    func testRenderedConfigParsesBackToItself() throws {
        var c = TrainingConfig()
        try c.override("optimizer=adamw")
        try c.override("schedule=cosine")
        try c.override("border=7")
        try c.override("noise=12.5")
        XCTAssertEqual(try parse(c.rendered()), c)
    }
}
