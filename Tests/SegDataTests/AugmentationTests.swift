import XCTest
import SegCore
import SegData

/// Augmentation is a pure function of (seed, epoch, index), keeps image and mask aligned, marks
/// what it invents as ignored, and does nothing unless asked.
final class AugmentationTests: XCTestCase {
    /// A 2-channel 12x10 sample whose image encodes its own coordinates and whose labels are
    /// 1 on the right half.
    let sample: Sample = {
        let (h, w) = (12, 10)
        var image = [Float](), labels = [UInt8]()
        for c in 0..<2 { for y in 0..<h { for x in 0..<w { image.append(Float(c * 1000 + y * w + x)) } } }
        for _ in 0..<h { for x in 0..<w { labels.append(x >= w / 2 ? 1 : 0) } }
        return Sample(image: image, labels: labels, channels: 2, height: h, width: w)
    }()

    func testOffDoesNothingAndTheSameDrawGivesTheSameSample() {
        let none = Augmentation()
        XCTAssertTrue(none.isIdentity)
        XCTAssertEqual(none.training(sample, seed: 1, epoch: 0, index: 0).image, sample.image)
        var a = Augmentation()
        a.flipHorizontal = true; a.scaleMin = 0.7; a.scaleMax = 1.4; a.rotation = 20; a.crop = 8
        a.brightness = 0.1; a.contrast = 0.2; a.noise = 0.05
        let s1 = a.training(sample, seed: 3, epoch: 2, index: 5), s2 = a.training(sample, seed: 3, epoch: 2, index: 5)
        XCTAssertEqual(s1.image, s2.image)
        XCTAssertEqual(s1.labels, s2.labels)
        XCTAssertEqual([s1.height, s1.width, s1.image.count], [8, 8, 2 * 64])
        let others = [a.training(sample, seed: 3, epoch: 3, index: 5), a.training(sample, seed: 3, epoch: 2, index: 6),
                      a.training(sample, seed: 4, epoch: 2, index: 5)]
        for o in others { XCTAssertNotEqual(o.image, s1.image, "another epoch, index or seed draws anew") }
    }

    func testCropsAreExactCopiesAndPaddingIsIgnored() {
        var a = Augmentation()
        a.crop = 6
        // training crops: some window of the image, copied exactly, image and mask together
        for index in 0..<20 {
            let t = a.training(sample, seed: 9, epoch: 0, index: index)
            let y0 = Int(t.image[0]) / 10, x0 = Int(t.image[0]) % 10
            for y in 0..<6 { for x in 0..<6 {
                XCTAssertEqual(t.image[y * 6 + x], Float((y0 + y) * 10 + x0 + x))
                XCTAssertEqual(t.image[36 + y * 6 + x], 1000 + Float((y0 + y) * 10 + x0 + x))
                XCTAssertEqual(t.labels[y * 6 + x], x0 + x >= 5 ? 1 : 0)
            } }
        }
        // a crop larger than the image pads: zero image, ignored mask, every pixel of the image kept
        a.crop = 16
        let padded = a.training(sample, seed: 9, epoch: 0, index: 0)
        XCTAssertEqual(padded.labels[0], Sample.ignored)
        XCTAssertEqual(padded.image[0], 0)
        XCTAssertEqual(padded.labels.filter { $0 != Sample.ignored }.count, 12 * 10)
    }

    func testFlipsAndRotationKeepImageAndMaskAligned() {
        var a = Augmentation()
        a.flipHorizontal = true
        let flips = (0..<16).map { a.training(sample, seed: 2, epoch: 0, index: $0) }
        let flipped = flips.filter { $0.image != sample.image }
        XCTAssertTrue(!flipped.isEmpty && flipped.count < 16, "about half are flipped")
        for f in flipped {
            XCTAssertEqual(f.image[0], 9)
            XCTAssertEqual(f.labels[0], 1)
        }
        // rotation by a small angle at scale 1: mask labels still follow the image's x
        a = Augmentation()
        a.rotation = 10
        // an image holding its own x coordinate (+1, so that padding's 0 stands out)
        let xs = Sample(image: (0..<120).map { Float($0 % 10 + 1) }, labels: sample.labels, channels: 1, height: 12, width: 10)
        let r = a.training(xs, seed: 5, epoch: 0, index: 1)
        var agree = 0, labelled = 0
        for p in 0..<(12 * 10) where r.labels[p] != Sample.ignored {
            labelled += 1
            let x = r.image[p] - 1   // the source x there, interpolated
            if (x >= 4.5) == (r.labels[p] == 1) || abs(x - 4.5) < 1 { agree += 1 }
        }
        XCTAssertGreaterThan(labelled, 90)
        XCTAssertGreaterThanOrEqual(Double(agree), 0.95 * Double(labelled), "the mask moved with the image")
    }
}
