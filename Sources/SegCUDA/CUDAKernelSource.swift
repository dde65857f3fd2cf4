// segdist's GPU kernels as CUDA C, compiled at run time by NVRTC (`NVRTC.compileCached`) for
// the GPU found, so building segdist needs nothing from CUDA. Each kernel mirrors the CPU
// kernel of the same name in SegKernels (same formulas, same order of operations where it
// matters, reductions in double) so that the GPU agrees with the CPU and PyTorch. Every loop is
// grid-stride over 64-bit indices; a launch needs only enough blocks to fill the GPU.
// Convolutions are im2col / col2im here plus cuBLAS GEMMs (or cuDNN) on the host side.

/// The kernels' source and the entry points it defines (checked against the compiled PTX).
public enum CUDAKernelSource {
    public static let entryPoints = [
        "add_f32", "add_inplace_f32", "scale_inplace_f32", "multiply_f32",
        "relu_f32", "relu_backward_f32", "sigmoid_f32", "sigmoid_backward_f32",
        "sgd_update_f32", "adam_update_f32",
        "im2col_batch_f32", "col2im_batch_f32", "nchw_to_cnp_f32", "cnp_to_nchw_f32",
        "add_channel_bias_f32", "sum_per_channel_f32",
        "bn_channel_sums_f32", "bn_channel_sqdev_f32", "bn_finish_statistics_f32", "bn_apply_f32", "bn_eval_f32",
        "bn_backward_sums_f32", "bn_parameter_gradients_f32", "bn_backward_input_f32",
        "maxpool_forward_f32", "maxpool_backward_f32", "bilinear_forward_f32", "bilinear_backward_f32",
        "adaptive_avg_forward_f32", "adaptive_avg_backward_f32", "pad_forward_f32", "pad_backward_f32",
        "concat_channels_f32", "split_channels_f32",
        "bce_sums_f32", "bce_gradient_f32", "softmax_channels_f32", "argmax_channels_f32", "target_classes_f32",
        "cross_entropy_sums_f32", "cross_entropy_gradient_f32", "overlap_counts_f32",
        "hardswish_f32", "hardswish_backward_f32", "hardsigmoid_f32", "hardsigmoid_backward_f32",
        "scale_channels_f32", "scale_channels_input_grad_f32", "scale_channels_scale_grad_f32",
        "grouped_conv_forward_f32", "grouped_conv_input_grad_f32", "grouped_conv_weight_grad_f32",
    ]

    public static let source = #"""
typedef long long i64;
#define LOOP(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// Sum of a block's `v` (blockDim.x a power of two, <= 1024) into out (atomically).
__device__ void block_sum_into(double v, double *out) {
    __shared__ double part[1024];
    part[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) atomicAdd(out, part[0]);
}

// The sum of the block's `v`, for thread 0 (every thread of the block must call it).
__device__ double block_sum(double v) {
    __shared__ double total;
    if (threadIdx.x == 0) total = 0;
    __syncthreads();
    block_sum_into(v, &total);
    __syncthreads();
    return total;
}

__device__ float sigmoidf_(float x) {
    // as SegKernels.sigmoid: stable on both sides
    if (x >= 0) { float e = expf(-x); return 1.0f / (1.0f + e); }
    float e = expf(x); return e / (1.0f + e);
}

extern "C" {
// MARK: elementwise
// (fill and copy are cuMemsetD32 / cuMemcpyDtoD)
__global__ void add_f32(const float *a, const float *b, float *y, i64 n) { LOOP(i, n) y[i] = a[i] + b[i]; }
__global__ void add_inplace_f32(float *d, const float *s, i64 n) { LOOP(i, n) d[i] += s[i]; }
__global__ void scale_inplace_f32(float *t, const float *s, i64 n) { float k = *s; LOOP(i, n) t[i] *= k; }
__global__ void multiply_f32(const float *a, const float *b, float *y, i64 n) { LOOP(i, n) y[i] = a[i] * b[i]; }
__global__ void relu_f32(const float *x, float *y, i64 n) { LOOP(i, n) y[i] = x[i] > 0 ? x[i] : 0; }
__global__ void relu_backward_f32(const float *y, const float *dy, float *dx, i64 n) { LOOP(i, n) dx[i] = y[i] > 0 ? dy[i] : 0; }
__global__ void sigmoid_f32(const float *x, float *y, i64 n) { LOOP(i, n) y[i] = sigmoidf_(x[i]); }
__global__ void sigmoid_backward_f32(const float *y, const float *dy, float *dx, i64 n) {
    LOOP(i, n) dx[i] = dy[i] * y[i] * (1 - y[i]);
}

// MARK: optimizers over the flat buffers (SegKernels/Optim/OptimizerKernels.swift)
__global__ void sgd_update_f32(float *p, const float *g, float *buf, i64 n, float lr, float mu, float dampening, float wd,
                               int nesterov, int first) {
    LOOP(i, n) {
        float d = g[i] + wd * p[i];
        if (buf == 0 || mu == 0) { p[i] -= lr * d; continue; }
        float b = first ? d : mu * buf[i] + (1 - dampening) * d;
        buf[i] = b;
        p[i] -= lr * (nesterov ? d + mu * b : b);
    }
}
__global__ void adam_update_f32(float *p, const float *g, float *m, float *v, i64 n, float lr, float b1, float b2, float eps,
                                float wd, int decoupled, float step_size, float sqrt_bc2) {
    LOOP(i, n) {
        float grad = g[i];
        if (decoupled) p[i] *= 1 - lr * wd; else grad += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * grad;
        v[i] = b2 * v[i] + (1 - b2) * grad * grad;
        p[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

// MARK: MobileNetV3's activations and channel scaling (SegKernels/Kernels/HardActivations.swift)
__global__ void hardswish_f32(const float *x, float *y, i64 n) {
    LOOP(i, n) { float v = x[i]; y[i] = v * fminf(fmaxf(v + 3.0f, 0.0f), 6.0f) / 6.0f; }
}
__global__ void hardswish_backward_f32(const float *x, const float *dy, float *dx, i64 n) {
    LOOP(i, n) { float v = x[i]; dx[i] = v <= -3.0f ? 0.0f : v < 3.0f ? dy[i] * (v / 3.0f + 0.5f) : dy[i]; }
}
__global__ void hardsigmoid_f32(const float *x, float *y, i64 n) { LOOP(i, n) y[i] = fminf(fmaxf(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f; }
__global__ void hardsigmoid_backward_f32(const float *x, const float *dy, float *dx, i64 n) {
    LOOP(i, n) dx[i] = x[i] > -3.0f && x[i] < 3.0f ? dy[i] / 6.0f : 0.0f;
}
// y = x * s per plane of P values; s holds one value per plane
__global__ void scale_channels_f32(const float *x, const float *s, float *y, i64 P, i64 n) { LOOP(i, n) y[i] = x[i] * s[i / P]; }
__global__ void scale_channels_input_grad_f32(const float *dy, const float *s, float *dx, i64 P, i64 n) { LOOP(i, n) dx[i] = dy[i] * s[i / P]; }
// one block per plane: ds[plane] = sum of dy * x over the plane
__global__ void scale_channels_scale_grad_f32(const float *x, const float *dy, float *ds, i64 P) {
    const float *a = x + (i64)blockIdx.x * P, *b = dy + (i64)blockIdx.x * P;
    double v = 0;
    for (i64 k = threadIdx.x; k < P; k += blockDim.x) v += (double)(b[k] * a[k]);
    double total = block_sum(v);
    if (threadIdx.x == 0) ds[blockIdx.x] = (float)total;
}

// MARK: grouped and depthwise convolutions (SegKernels/Kernels/GroupedConv2d.swift), direct:
// C input and Co output channels in G groups, weight (Co, C / G, KH, KW); OH, OW from the window
#define CONV_OUT(size, k) (((size) + 2 * P - D * ((k) - 1) - 1) / S + 1)
__global__ void grouped_conv_forward_f32(const float *x, const float *w, const float *bias, float *y, int N, int C, int H, int W,
                                         int Co, int KH, int KW, int S, int P, int D, int G) {
    int OH = CONV_OUT(H, KH), OW = CONV_OUT(W, KW), ci = C / G, co = Co / G;
    LOOP(i, (i64)N * Co * OH * OW) {
        int ow = i % OW, oh = (i / OW) % OH, oc = (i / ((i64)OW * OH)) % Co; i64 n = i / ((i64)OW * OH * Co);
        int first = (oc / co) * ci;
        float acc = bias ? bias[oc] : 0.0f;
        for (int c = 0; c < ci; c++) {
            const float *plane = x + (n * C + first + c) * H * W;
            const float *taps = w + ((i64)oc * ci + c) * KH * KW;
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * S - P + kh * D;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    int iw = ow * S - P + kw * D;
                    if (iw >= 0 && iw < W) acc += taps[kh * KW + kw] * plane[ih * W + iw];
                }
            }
        }
        y[i] = acc;
    }
}
// dx[n, c, ih, iw]: every output of c's group whose window reads (ih, iw)
__global__ void grouped_conv_input_grad_f32(const float *dy, const float *w, float *dx, int N, int C, int H, int W,
                                            int Co, int KH, int KW, int S, int P, int D, int G) {
    int OH = CONV_OUT(H, KH), OW = CONV_OUT(W, KW), ci = C / G, co = Co / G;
    LOOP(i, (i64)N * C * H * W) {
        int iw = i % W, ih = (i / W) % H, c = (i / ((i64)W * H)) % C; i64 n = i / ((i64)W * H * C);
        int group = c / ci, cc = c % ci;
        float acc = 0;
        for (int oc = group * co; oc < (group + 1) * co; oc++) {
            const float *grad = dy + (n * Co + oc) * OH * OW;
            const float *taps = w + ((i64)oc * ci + cc) * KH * KW;
            for (int kh = 0; kh < KH; kh++) {
                int t = ih + P - kh * D;
                if (t < 0 || t % S != 0 || t / S >= OH) continue;
                for (int kw = 0; kw < KW; kw++) {
                    int u = iw + P - kw * D;
                    if (u >= 0 && u % S == 0 && u / S < OW) acc += taps[kh * KW + kw] * grad[(t / S) * OW + u / S];
                }
            }
        }
        dx[i] = acc;
    }
}
// one block per weight value: dw += the sum over (n, oh, ow) of dy * the input it multiplied
__global__ void grouped_conv_weight_grad_f32(const float *x, const float *dy, float *dw, int N, int C, int H, int W,
                                             int Co, int KH, int KW, int S, int P, int D, int G) {
    int OH = CONV_OUT(H, KH), OW = CONV_OUT(W, KW), ci = C / G, co = Co / G;
    int idx = blockIdx.x, kw = idx % KW, kh = (idx / KW) % KH, cc = (idx / (KW * KH)) % ci, oc = idx / (KW * KH * ci);
    int c = (oc / co) * ci + cc;
    double v = 0;
    for (i64 k = threadIdx.x; k < (i64)N * OH * OW; k += blockDim.x) {
        int ow = k % OW, oh = (k / OW) % OH; i64 n = k / ((i64)OW * OH);
        int ih = oh * S - P + kh * D, iw = ow * S - P + kw * D;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
            v += (double)(dy[((n * Co + oc) * OH + oh) * OW + ow] * x[((n * C + c) * H + ih) * W + iw]);
    }
    double total = block_sum(v);
    if (threadIdx.x == 0) dw[idx] += (float)total;
}

// MARK: convolution helpers, as SegKernels.im2col / col2im
// N images at once, channel-major: col (C * kh * kw, N * oh * ow), image
// n's window positions in columns n * oh * ow ..< (n + 1) * oh * ow, so one GEMM serves the batch.
__global__ void im2col_batch_f32(const float *img, float *col, int N, int C, int H, int W, int kh, int kw, int stride, int pad,
                                 int dil, int oh, int ow) {
    i64 P = (i64)oh * ow, NP = N * P;
    LOOP(i, (i64)C * kh * kw * NP) {
        i64 j = i % NP, row = i / NP; int n = j / P; i64 q = j % P;
        int x = q % ow, y = q / ow, kj = row % kw, ki = (row / kw) % kh, c = row / ((i64)kw * kh);
        int iy = y * stride + ki * dil - pad, ix = x * stride + kj * dil - pad;
        col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? img[(((i64)n * C + c) * H + iy) * W + ix] : 0;
    }
}
// img (N, C, H, W) += the folded batch col
__global__ void col2im_batch_f32(const float *col, float *img, int N, int C, int H, int W, int kh, int kw, int stride, int pad,
                                 int dil, int oh, int ow) {
    i64 P = (i64)oh * ow, NP = N * P;
    LOOP(i, (i64)N * C * H * W) {
        int ix = i % W; int iy = (i / W) % H; int c = (i / ((i64)H * W)) % C; int n = i / ((i64)C * H * W);
        float s = 0;
        for (int ki = 0; ki < kh; ki++) {
            int ty = iy + pad - ki * dil;
            if (ty < 0 || ty % stride != 0) continue;
            int y = ty / stride; if (y >= oh) continue;
            for (int kj = 0; kj < kw; kj++) {
                int tx = ix + pad - kj * dil;
                if (tx < 0 || tx % stride != 0) continue;
                int x = tx / stride; if (x >= ow) continue;
                s += col[(((i64)c * kh + ki) * kw + kj) * NP + n * P + (i64)y * ow + x];
            }
        }
        img[i] += s;
    }
}
// (N, C, P) <-> (C, N, P): GEMM results of a batch come out channel-major
__global__ void nchw_to_cnp_f32(const float *x, float *y, int N, int C, i64 P) {
    LOOP(i, (i64)N * C * P) { i64 q = i % P; int c = (i / P) % C; int n = i / (P * C); y[((i64)c * N + n) * P + q] = x[i]; }
}
__global__ void cnp_to_nchw_f32(const float *x, float *y, int N, int C, i64 P) {
    LOOP(i, (i64)N * C * P) { i64 q = i % P; int c = (i / P) % C; int n = i / (P * C); y[i] = x[((i64)c * N + n) * P + q]; }
}
__global__ void add_channel_bias_f32(float *y, const float *bias, int C, i64 P, i64 n) { LOOP(i, n) y[i] += bias[(i / P) % C]; }
// out[c] += sum over (N, P) of t; G blocks per channel (block c * G + g takes every G-th stretch).
#define CHANNEL_LOOP(k, N, P) int c = blockIdx.x / G, g = blockIdx.x % G; \
    for (i64 k = (i64)g * blockDim.x + threadIdx.x; k < (i64)(N) * (P); k += (i64)G * blockDim.x)
__global__ void sum_per_channel_f32(const float *t, float *out, int N, int C, i64 P, int G) {
    double s = 0;
    CHANNEL_LOOP(k, N, P) s += t[((k / P) * C + c) * P + k % P];
    double total = block_sum(s);
    if (threadIdx.x == 0) atomicAdd(&out[c], (float)total);
}

// MARK: batch norm (SegKernels/Kernels/BatchNorm2d.swift); statistics per channel, G blocks each
__global__ void bn_channel_sums_f32(const float *x, double *sums, int N, int C, i64 P, int G) {
    double s = 0;
    CHANNEL_LOOP(k, N, P) s += x[((k / P) * C + c) * P + k % P];
    block_sum_into(s, &sums[c]);
}
__global__ void bn_channel_sqdev_f32(const float *x, const double *sums, double count, double *sq, int N, int C, i64 P, int G) {
    double s = 0;
    CHANNEL_LOOP(k, N, P) {
        float mean = (float)(sums[c] / count), d = x[((k / P) * C + c) * P + k % P] - mean;
        s += (double)(d * d);
    }
    block_sum_into(s, &sq[c]);
}
// mean, 1/sqrt(var + eps) and the running statistics from the (possibly all-reduced) sums.
__global__ void bn_finish_statistics_f32(const double *sums, const double *sq, double count, float *mean, float *inv_std,
                                         float *running_mean, float *running_var, int C, float momentum, float eps) {
    LOOP(c, C) {
        float m = (float)(sums[c] / count);
        double var = sq[c] / count;
        mean[c] = m; inv_std[c] = (float)(1.0 / sqrt(var + (double)eps));
        double unbiased = count > 1 ? var * count / (count - 1) : var;
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * m;
        running_var[c] = (1 - momentum) * running_var[c] + momentum * (float)unbiased;
    }
}
__global__ void bn_apply_f32(const float *x, float *y, const float *gamma, const float *beta, const float *mean,
                             const float *inv_std, int C, i64 P, i64 n, int relu) {
    LOOP(i, n) {
        int c = (i / P) % C; float scale = gamma[c] * inv_std[c], shift = beta[c] - mean[c] * scale;
        float v = x[i] * scale + shift; y[i] = relu && v < 0 ? 0 : v;
    }
}
__global__ void bn_eval_f32(const float *x, float *y, const float *gamma, const float *beta, const float *running_mean,
                            const float *running_var, float eps, int C, i64 P, i64 n, int relu) {
    LOOP(i, n) {
        int c = (i / P) % C; float scale = gamma[c] / sqrtf(running_var[c] + eps), shift = beta[c] - running_mean[c] * scale;
        float v = x[i] * scale + shift; y[i] = relu && v < 0 ? 0 : v;
    }
}
// per channel: sum of g and of g * (x - mean), g = dy masked by the fused ReLU (y > 0)
__global__ void bn_backward_sums_f32(const float *x, const float *y, const float *dy, const float *mean, double *sums, int N, int C,
                                     i64 P, int relu, int G) {
    double sg = 0, sgx = 0;
    CHANNEL_LOOP(k, N, P) {
        i64 i = ((k / P) * C + c) * P + k % P;
        float g = relu && !(y[i] > 0) ? 0 : dy[i];
        sg += g; sgx += (double)(g * (x[i] - mean[c]));
    }
    block_sum_into(sg, &sums[2 * c]);
    __syncthreads();
    block_sum_into(sgx, &sums[2 * c + 1]);
}
// this process's own sums (gradients are all-reduced afterwards): dbeta += sum g, dgamma += sum g (x - mean) * inv_std
__global__ void bn_parameter_gradients_f32(const double *sums, const float *inv_std, float *dgamma, float *dbeta, int C) {
    LOOP(c, C) { dbeta[c] += (float)sums[2 * c]; dgamma[c] += (float)sums[2 * c + 1] * inv_std[c]; }
}
// dx = gamma * inv_std * (g - mean(g) - (x - mean) * inv_std^2 * mean(g * (x - mean))); dgamma, dbeta += ...
__global__ void bn_backward_input_f32(const float *x, const float *y, const float *dy, const float *gamma, const float *mean,
                                      const float *inv_std, const double *sums, double count, float *dx, int C, i64 P, i64 n,
                                      int relu) {
    LOOP(i, n) {
        int c = (i / P) % C;
        float g = relu && !(y[i] > 0) ? 0 : dy[i];
        float mg = (float)(sums[2 * c] / count), mgx = (float)(sums[2 * c + 1] / count), inv = inv_std[c];
        dx[i] = gamma[c] * inv * (g - mg - (x[i] - mean[c]) * inv * inv * mgx);
    }
}

// MARK: resampling and layout; planes = N * C
__global__ void maxpool_forward_f32(const float *x, float *y, int *arg, i64 planes, int H, int W, int oh, int ow, int k, int s,
                                    int pad) {
    LOOP(o, planes * oh * ow) {
        int j = o % ow; int i = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        const float *src = x + p * H * W;
        int r0 = max(i * s - pad, 0), r1 = min(i * s - pad + k, H), c0 = max(j * s - pad, 0), c1 = min(j * s - pad + k, W);
        float best = -__int_as_float(0x7f800000); int best_index = r0 * W + c0;
        for (int r = r0; r < r1; r++) {
            bool stop = false;
            for (int c = c0; c < c1; c++) {
                float v = src[r * W + c];
                if (v > best || isnan(v)) { best = v; best_index = r * W + c; if (isnan(v)) { stop = true; break; } }
            }
            if (stop) break;
        }
        y[o] = best; arg[o] = best_index;
    }
}
// dx must be zero: windows may overlap, so gradients are added atomically
__global__ void maxpool_backward_f32(const float *dy, const int *arg, float *dx, i64 planes, int H, int W, int oh, int ow) {
    LOOP(o, planes * oh * ow) { i64 p = o / ((i64)oh * ow); atomicAdd(&dx[p * H * W + arg[o]], dy[o]); }
}
__device__ void bilinear_axis(int o, int in_size, int out_size, int align, int *i0, int *i1, float *w0, float *w1) {
    float scale = align ? (out_size > 1 ? (float)(in_size - 1) / (float)(out_size - 1) : 0) : (float)in_size / (float)out_size;
    float src = align ? scale * (float)o : fmaxf(scale * ((float)o + 0.5f) - 0.5f, 0);
    int lo = min((int)src, in_size - 1);
    *i0 = lo; *i1 = lo < in_size - 1 ? lo + 1 : lo; *w1 = src - (float)lo; *w0 = 1 - *w1;
}
__global__ void bilinear_forward_f32(const float *x, float *y, i64 planes, int ih, int iw, int oh, int ow, int align) {
    LOOP(o, planes * oh * ow) {
        int q = o % ow; int r = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        int a, b, ya, yb; float wa, wb, wya, wyb;
        bilinear_axis(q, iw, ow, align, &a, &b, &wa, &wb);
        bilinear_axis(r, ih, oh, align, &ya, &yb, &wya, &wyb);
        const float *r0 = x + p * ih * iw + (i64)ya * iw, *r1 = x + p * ih * iw + (i64)yb * iw;
        y[o] = wya * (wa * r0[a] + wb * r0[b]) + wyb * (wa * r1[a] + wb * r1[b]);
    }
}
// dx must be zero
__global__ void bilinear_backward_f32(const float *dy, float *dx, i64 planes, int ih, int iw, int oh, int ow, int align) {
    LOOP(o, planes * oh * ow) {
        int q = o % ow; int r = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        int a, b, ya, yb; float wa, wb, wya, wyb;
        bilinear_axis(q, iw, ow, align, &a, &b, &wa, &wb);
        bilinear_axis(r, ih, oh, align, &ya, &yb, &wya, &wyb);
        float v = dy[o]; float *r0 = dx + p * ih * iw + (i64)ya * iw, *r1 = dx + p * ih * iw + (i64)yb * iw;
        atomicAdd(&r0[a], wya * wa * v); atomicAdd(&r0[b], wya * wb * v);
        atomicAdd(&r1[a], wyb * wa * v); atomicAdd(&r1[b], wyb * wb * v);
    }
}
// PyTorch's adaptive bins: [floor(i * in / out), ceil((i + 1) * in / out))
__global__ void adaptive_avg_forward_f32(const float *x, float *y, i64 planes, int ih, int iw, int oh, int ow) {
    LOOP(o, planes * oh * ow) {
        int j = o % ow; int i = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        int r0 = i * ih / oh, r1 = ((i + 1) * ih + oh - 1) / oh, c0 = j * iw / ow, c1 = ((j + 1) * iw + ow - 1) / ow;
        float s = 0;
        for (int r = r0; r < r1; r++) for (int c = c0; c < c1; c++) s += x[p * ih * iw + (i64)r * iw + c];
        y[o] = s / (float)((r1 - r0) * (c1 - c0));
    }
}
// dx must be zero
__global__ void adaptive_avg_backward_f32(const float *dy, float *dx, i64 planes, int ih, int iw, int oh, int ow) {
    LOOP(o, planes * oh * ow) {
        int j = o % ow; int i = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        int r0 = i * ih / oh, r1 = ((i + 1) * ih + oh - 1) / oh, c0 = j * iw / ow, c1 = ((j + 1) * iw + ow - 1) / ow;
        float g = dy[o] / (float)((r1 - r0) * (c1 - c0));
        for (int r = r0; r < r1; r++) for (int c = c0; c < c1; c++) atomicAdd(&dx[p * ih * iw + (i64)r * iw + c], g);
    }
}
// y (planes, oh, ow) = x placed at (top, left); negative padding crops
__global__ void pad_forward_f32(const float *x, float *y, i64 planes, int ih, int iw, int oh, int ow, int top, int left) {
    LOOP(o, planes * oh * ow) {
        int j = o % ow; int i = (o / ow) % oh; i64 p = o / ((i64)oh * ow);
        int si = i - top, sj = j - left;
        y[o] = (si >= 0 && si < ih && sj >= 0 && sj < iw) ? x[p * ih * iw + (i64)si * iw + sj] : 0;
    }
}
__global__ void pad_backward_f32(const float *dy, float *dx, i64 planes, int ih, int iw, int oh, int ow, int top, int left) {
    LOOP(o, planes * ih * iw) {
        int j = o % iw; int i = (o / iw) % ih; i64 p = o / ((i64)ih * iw);
        int ti = i + top, tj = j + left;
        dx[o] = (ti >= 0 && ti < oh && tj >= 0 && tj < ow) ? dy[p * oh * ow + (i64)ti * ow + tj] : 0;
    }
}
__global__ void concat_channels_f32(const float *a, const float *b, float *y, int N, int ca, int cb, i64 P) {
    LOOP(i, (i64)N * (ca + cb) * P) {
        i64 q = i % P; int c = (i / P) % (ca + cb); i64 n = i / (P * (ca + cb));
        y[i] = c < ca ? a[(n * ca + c) * P + q] : b[(n * cb + c - ca) * P + q];
    }
}
__global__ void split_channels_f32(const float *dy, float *da, float *db, int N, int ca, int cb, i64 P) {
    LOOP(i, (i64)N * (ca + cb) * P) {
        i64 q = i % P; int c = (i / P) % (ca + cb); i64 n = i / (P * (ca + cb));
        if (c < ca) da[(n * ca + c) * P + q] = dy[i]; else db[(n * cb + c - ca) * P + q] = dy[i];
    }
}

// MARK: losses and metrics; negative targets mark ignored pixels
// sums[0] += the loss over labelled elements, sums[1] += their count
__global__ void bce_sums_f32(const float *x, const float *t, double *sums, i64 n) {
    double loss = 0, valid = 0;
    LOOP(i, n) {
        if (t[i] < 0) continue;
        float v = x[i];
        loss += fmaxf(v, 0) - v * t[i] + log1pf(expf(-fabsf(v))); valid += 1;
    }
    block_sum_into(loss, &sums[0]);
    __syncthreads();
    block_sum_into(valid, &sums[1]);
}
__global__ void bce_gradient_f32(const float *x, const float *t, const double *sums, float *grad, i64 n) {
    float scale = sums[1] > 0 ? (float)(1.0 / sums[1]) : 0;
    LOOP(i, n) grad[i] = t[i] < 0 ? 0 : (sigmoidf_(x[i]) - t[i]) * scale;
}
// softmax over the channels of each pixel: x, y (N, C, P)
__global__ void softmax_channels_f32(const float *x, float *y, int N, int C, i64 P) {
    LOOP(k, (i64)N * P) {
        i64 n = k / P, q = k % P; const float *px = x + n * C * P + q; float *py = y + n * C * P + q;
        float m = px[0]; for (int c = 1; c < C; c++) m = fmaxf(m, px[c * P]);
        float s = 0; for (int c = 0; c < C; c++) { float e = expf(px[c * P] - m); py[c * P] = e; s += e; }
        for (int c = 0; c < C; c++) py[c * P] /= s;
    }
}
// first maximum on ties, as SegKernels.argmaxChannels
__global__ void argmax_channels_f32(const float *x, int *out, int N, int C, i64 P) {
    LOOP(k, (i64)N * P) {
        i64 n = k / P, q = k % P; const float *px = x + n * C * P + q;
        int best = 0; float v = px[0];
        for (int c = 1; c < C; c++) if (px[c * P] > v) { v = px[c * P]; best = c; }
        out[k] = best;
    }
}
__global__ void target_classes_f32(const float *t, int *out, int N, int C, i64 P) {
    LOOP(k, (i64)N * P) {
        i64 n = k / P, q = k % P; const float *pt = t + n * C * P + q;
        if (pt[0] < 0) { out[k] = -1; continue; }
        int best = 0; float v = pt[0];
        for (int c = 1; c < C; c++) if (pt[c * P] > v) { v = pt[c * P]; best = c; }
        out[k] = best;
    }
}
// sums[0] += sum of w[t] * -log softmax(x)[t], sums[1] += sum of w[t] over labelled pixels
__global__ void cross_entropy_sums_f32(const float *x, const int *t, const float *w, double *sums, int N, int C, i64 P, int ignore) {
    double loss = 0, weight = 0;
    LOOP(k, (i64)N * P) {
        int target = t[k]; if (target == ignore || target < 0) continue;
        i64 n = k / P, q = k % P; const float *px = x + n * C * P + q;
        float m = px[0]; for (int c = 1; c < C; c++) m = fmaxf(m, px[c * P]);
        float s = 0; for (int c = 0; c < C; c++) s += expf(px[c * P] - m);
        float wt = w ? w[target] : 1;
        loss += (double)(wt * (logf(s) + m - px[target * P])); weight += wt;
    }
    block_sum_into(loss, &sums[0]);
    __syncthreads();
    block_sum_into(weight, &sums[1]);
}
__global__ void cross_entropy_gradient_f32(const float *x, const int *t, const float *w, const double *sums, float *grad, int N,
                                           int C, i64 P, int ignore) {
    float scale = sums[1] > 0 ? (float)(1.0 / sums[1]) : 0;
    LOOP(k, (i64)N * P) {
        i64 n = k / P, q = k % P; const float *px = x + n * C * P + q; float *pg = grad + n * C * P + q;
        int target = t[k];
        if (target == ignore || target < 0) { for (int c = 0; c < C; c++) pg[c * P] = 0; continue; }
        float m = px[0]; for (int c = 1; c < C; c++) m = fmaxf(m, px[c * P]);
        float s = 0; for (int c = 0; c < C; c++) s += expf(px[c * P] - m);
        float wt = (w ? w[target] : 1) * scale;
        for (int c = 0; c < C; c++) pg[c * P] = wt * (expf(px[c * P] - m) / s - (c == target ? 1 : 0));
    }
}
// counts (N, C, 3) += (|pred ∩ truth|, |pred|, |truth|); softmax != 0: prediction = arg-max class
__global__ void overlap_counts_f32(const float *x, const float *t, unsigned long long *counts, int N, int C, i64 P, int softmax) {
    LOOP(k, (i64)N * P) {
        i64 n = k / P, q = k % P; const float *px = x + n * C * P + q, *pt = t + n * C * P + q;
        if (pt[0] < 0) continue;
        int best = 0; float v = px[0];
        for (int c = 1; c < C; c++) if (px[c * P] > v) { v = px[c * P]; best = c; }
        for (int c = 0; c < C; c++) {
            bool pred = softmax ? best == c : px[c * P] > 0, truth = pt[c * P] > 0.5f;
            unsigned long long *o = counts + (n * C + c) * 3;
            if (pred && truth) atomicAdd(&o[0], 1ULL);
            if (pred) atomicAdd(&o[1], 1ULL);
            if (truth) atomicAdd(&o[2], 1ULL);
        }
    }
}
}
"""#
}
