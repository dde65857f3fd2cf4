/// An RGB drawing surface for the pictures segdist writes (loss curve, prediction panels).
public struct Canvas {
    public let width: Int, height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, background: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        fill(x: 0, y: 0, w: width, h: height, color: background)
    }

    public mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    public mutating func fill(x: Int, y: Int, w: Int, h: Int, color: (UInt8, UInt8, UInt8)) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard x1 > x0, y1 > y0 else { return }
        for yy in y0..<y1 { for xx in x0..<x1 { set(xx, yy, color) } }
    }

    /// A line of the given thickness (Bresenham, thickened with a square brush).
    public mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            fill(x: x - thickness / 2, y: y - thickness / 2, w: thickness, h: thickness, color: color)
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    /// Copies an image (grey or RGB, values 0...255) to (x, y).
    public mutating func blit(_ image: PNGImage, x: Int, y: Int) {
        for yy in 0..<image.height {
            for xx in 0..<image.width {
                let i = (yy * image.width + xx) * image.channels
                set(x + xx, y + yy, image.channels == 1 ? (image.pixels[i], image.pixels[i], image.pixels[i])
                                                        : (image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]))
            }
        }
    }

    /// Text in a 3x5 pixel font scaled by `scale` (digits, a few capitals and punctuation).
    public mutating func text(_ s: String, x: Int, y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        var cx = x
        for ch in s.uppercased() {
            if let rows = glyphs[ch] {
                for (r, bits) in rows.enumerated() {
                    for c in 0..<3 where bits & (4 >> c) != 0 {
                        fill(x: cx + c * scale, y: y + r * scale, w: scale, h: scale, color: color)
                    }
                }
            }
            cx += 4 * scale
        }
    }

    public var image: PNGImage { PNGImage(width: width, height: height, channels: 3, pixels: pixels) }
}

/// Rows of 3 bits, top to bottom.
private let glyphs: [Character: [Int]] = [
    "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
    "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
    ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], ":": [0, 2, 0, 2, 0], " ": [0, 0, 0, 0, 0], "/": [1, 1, 2, 4, 4],
    "A": [2, 5, 7, 5, 5], "C": [7, 4, 4, 4, 7], "D": [6, 5, 5, 5, 6], "E": [7, 4, 6, 4, 7], "G": [7, 4, 5, 5, 7],
    "I": [7, 2, 2, 2, 7], "L": [4, 4, 4, 4, 7], "M": [5, 7, 7, 5, 5], "N": [6, 5, 5, 5, 5], "O": [7, 5, 5, 5, 7],
    "P": [7, 5, 7, 4, 4], "R": [6, 5, 6, 5, 5], "S": [7, 4, 7, 1, 7], "T": [7, 2, 2, 2, 2], "U": [5, 5, 5, 5, 7],
    "V": [5, 5, 5, 5, 2], "H": [5, 5, 7, 5, 5], "B": [6, 5, 6, 5, 6], "K": [5, 5, 6, 5, 5], "F": [7, 4, 6, 4, 4],
    "W": [5, 5, 7, 7, 5], "Y": [5, 5, 2, 2, 2], "X": [5, 5, 2, 5, 5], "J": [1, 1, 1, 5, 7], "Q": [7, 5, 5, 7, 1],
    "Z": [7, 1, 2, 4, 7],
]

/// A perceptual-ish heat map (black - purple - orange - yellow) for values in [0, 1].
public func heatColor(_ v: Float) -> (UInt8, UInt8, UInt8) {
    let t = min(max(v, 0), 1)
    let r = min(1, 1.6 * t), g = max(0, min(1, 2.2 * t - 1.0)), b = t < 0.5 ? 0.6 * t * 2 * (1 - t) * 2 : max(0, 1.4 * (t - 0.75)) * 2
    return (UInt8(r * 255), UInt8(g * 255), UInt8(min(1, b) * 255))
}
