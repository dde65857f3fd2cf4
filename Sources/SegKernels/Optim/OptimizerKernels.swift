import Foundation

// The optimizers' update loops over the flat parameter buffer (one loop, spread over the
// workers); the hyperparameters and the step count live in SegCore's optimizer classes.

/// torch.optim.SGD: d = g + wd * p; buf = first ? d : mu * buf + (1 - dampening) * d;
/// p -= lr * (nesterov ? d + mu * buf : buf). Without momentum, `buffer` is nil. The gradient
/// read is `gradientScale` times g (a step's 1 / loss denominator: the rounded product a
/// separate scaling pass would have stored, without that pass over the buffer).
public func sgdUpdate(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
                      buffer: UnsafeMutablePointer<Float>?, count: Int, learningRate lr: Float, momentum mu: Float,
                      dampening: Float, weightDecay wd: Float, nesterov: Bool, firstStep: Bool, gradientScale s: Float = 1) {
    guard let buf = buffer, mu != 0 else {
        Parallel.chunks(count) { _, range in
            for i in range { p[i] -= lr * (g[i] * s + wd * p[i]) }
        }
        return
    }
    let damp = 1 - dampening
    Parallel.chunks(count) { _, range in
        for i in range {
            let d = g[i] * s + wd * p[i]
            let b = firstStep ? d : mu * buf[i] + damp * d
            buf[i] = b
            p[i] -= lr * (nesterov ? d + mu * b : b)
        }
    }
}

/// torch.optim.Adam / AdamW (no amsgrad) at step `step` (1-based).
public func adamUpdate(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
                       m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int, step: Int,
                       learningRate lr: Float, beta1 b1: Float, beta2 b2: Float, eps: Float, weightDecay wd: Float,
                       decoupled: Bool, gradientScale s: Float = 1) {
    let t = Double(step)
    let stepSize = Float(Double(lr) / (1 - pow(Double(b1), t)))
    let sqrtBC2 = Float((1 - pow(Double(b2), t)).squareRoot())
    Parallel.chunks(count) { _, range in
        for i in range {
            var grad = g[i] * s
            if decoupled { p[i] *= 1 - lr * wd } else { grad += wd * p[i] }
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            p[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBC2 + eps)
        }
    }
}
