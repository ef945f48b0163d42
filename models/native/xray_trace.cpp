// The X-ray's traced forward of one nn.LSTM layer in C++, with the GIL released: models/xray/trace.py
// calls it per layer of a char-LSTM when models.native is built.
//
// Why: nn.LSTM has no hook for its gates. The PyTorch trace runs the fused kernel for h, then recomputes
// the gates of every step (two matmuls) and solves c in blocks: ~2x the model's forward. Here one pass
// per layer computes i, f, g, o, c and h of every step and writes them straight into the trace's
// tensors: the input product of all steps is one GEMM (as torch.lstm does), then each step is
// h(t-1) W_hh^T and the cell as plain loops. At H = 128 a step is 64K multiply-adds and 640 sigmoid or
// tanh: an ATen call per op would cost more in dispatch than the arithmetic, and 2.6 M scalar libm calls
// (2,000 characters, two layers) about as much as the model's forward again. The sigmoid and tanh here
// are Cephes' polynomials, branch-free so that the loops vectorize: within 2.5 ulp of the exact values.
//
// Not bitwise the fused kernel (oneDNN has its own GEMM blocking and its own activation
// approximations): equal to it to float32 rounding (tests/models/test_native_trace.py). A unit's values
// never depend on which units or layers a request lists: every layer runs whole, the same way, and
// `signals` only decides whether the six series are written out. The loops are compiled for AVX-512,
// AVX2 and the baseline (target_clones, picked once at load time by the CPU), so a build made on one
// x86 machine runs on another; results may differ in the last bits between those CPUs, never between
// two calls on one machine.
//
// Gate order i, f, g, o, biases b_ih + b_hh, as nn.LSTM. CPU float32 only; elsewhere trace.py keeps its
// PyTorch trace.

#include "xray_trace.h"

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace py = pybind11;
using at::Tensor;

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RNNLAB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RNNLAB_CLONES
#endif

namespace {

// exp(x) for x clamped to [-87, 88], where 2^n below is a normal float32 (a sigmoid beyond is 0 or 1 to
// float32 rounding anyway): Cephes' expf, 2^n times a degree-6 polynomial of the remainder, ~1.5 ulp.
inline float exp_clamped(float x) {
  x = x < 88.0f ? x : 88.0f;
  x = x > -87.0f ? x : -87.0f;
  // 1.5 * 2^23 added and taken away: x log2(e) rounded to the nearest integer, without a call.
  const float shifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693359375f;  // ln 2 in two parts: r exactly x - n ln 2 to float32 rounding
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_clamped(-x)); }

// Cephes' tanhf: an odd polynomial below |x| = 0.625 (where 1 - 2 / (e^2x + 1) would cancel), that
// formula above it; both computed, one kept, so that it vectorizes.
inline float tanh_approx(float x) {
  const float a = std::fabs(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float large = std::copysign(1.0f - 2.0f / (exp_clamped(a + a) + 1.0f), x);
  return a < 0.625f ? small : large;
}

constexpr int64_t kTile = 64;    // gates per register tile of the recurrent product (4 AVX-512 registers)
constexpr int64_t kStage = 16;   // steps staged before they are written out: one 64-byte line per series

// The cell, as nn.LSTM: c = f c(t-1) + i g, h = o tanh(c), from the pre-activations (4H: i, f, g, o).
// Every output its own restrict pointer: no aliasing to check, so the loop vectorizes.
inline void cell(const float* __restrict pre, float* __restrict c, float* __restrict i_out,
                 float* __restrict f_out, float* __restrict g_out, float* __restrict o_out,
                 float* __restrict c_out, float* __restrict h_out, int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    const float i = sigmoid(pre[u]);
    const float f = sigmoid(pre[H + u]);
    const float g = tanh_approx(pre[2 * H + u]);
    const float o = sigmoid(pre[3 * H + u]);
    const float c_new = f * c[u] + i * g;
    c[u] = c_new;
    i_out[u] = i;
    f_out[u] = f;
    g_out[u] = g;
    o_out[u] = o;
    c_out[u] = c_new;
    h_out[u] = o * tanh_approx(c_new);
  }
}

// One layer over T steps of B rows. xw: (B, T, 4H) the input product with both biases; packed: W_hh^T
// tile by tile (`pack`); hidden: (B, T, H) out, what the next layer and the head read; signals:
// (6, H, B, T) out or null, i f g o c h, each unit's series contiguous. pre: 4H scratch, c: H scratch,
// staged: (kStage, 6H) scratch.
RNNLAB_CLONES
void run_layer(const float* __restrict xw, const float* __restrict packed, float* __restrict hidden,
               float* __restrict signals, int64_t B, int64_t T, int64_t H, float* __restrict pre,
               float* __restrict c, float* __restrict staged) {
  const int64_t G = 4 * H;
  const int64_t tiled = G - G % kTile;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t u = 0; u < H; ++u) c[u] = 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      const float* x_row = xw + (b * T + t) * G;
      float* h_row = hidden + (b * T + t) * H;
      // pre = x_row + h(t-1) W_hh^T, a tile of gates at a time with k outermost in it, so that the
      // tile's sums stay in registers and its weights stream as one block; h(0) = 0 adds nothing.
      for (int64_t j = 0; j < G; ++j) pre[j] = x_row[j];
      if (t > 0) {
        const float* h_prev = h_row - H;
        for (int64_t j0 = 0; j0 < tiled; j0 += kTile) {
          const float* w = packed + j0 * H;
          float acc[kTile];
          for (int64_t j = 0; j < kTile; ++j) acc[j] = pre[j0 + j];
          for (int64_t k = 0; k < H; ++k) {
            const float hk = h_prev[k];
            for (int64_t j = 0; j < kTile; ++j) acc[j] += hk * w[k * kTile + j];
          }
          for (int64_t j = 0; j < kTile; ++j) pre[j0 + j] = acc[j];
        }
        const int64_t width = G - tiled;  // the last, narrower tile when 4H is not a multiple of kTile
        const float* w = packed + tiled * H;
        for (int64_t k = 0; k < H && width > 0; ++k) {
          const float hk = h_prev[k];
          for (int64_t j = 0; j < width; ++j) pre[tiled + j] += hk * w[k * width + j];
        }
      }
      // The six values staged in row t % kStage (signal s, unit u at s H + u).
      float* row = staged + (t % kStage) * 6 * H;
      cell(pre, c, row, row + H, row + 2 * H, row + 3 * H, row + 4 * H, row + 5 * H, H);
      std::memcpy(h_row, row + 5 * H, H * sizeof(float));
      // Every kStage steps (and at the end), the staged block into (6, H, B, T) transposed: each
      // series gets a whole cache line at once instead of one scattered store a step.
      const int64_t filled = t % kStage + 1;
      if (signals != nullptr && (filled == kStage || t == T - 1)) {
        float* out = signals + b * T + (t + 1 - filled);
        for (int64_t s = 0; s < 6 * H; ++s) {
          for (int64_t step = 0; step < filled; ++step) out[s * B * T + step] = staged[step * 6 * H + s];
        }
      }
    }
  }
}

// W_hh (4H, H) as run_layer reads it: W_hh^T cut into tiles of kTile gates (the last one narrower when
// 4H is not a multiple of kTile), each tile [k][gate], so a tile's product streams one block.
Tensor pack(const Tensor& w_hh) {
  const int64_t G = w_hh.size(0), H = w_hh.size(1);
  const Tensor w = w_hh.contiguous();
  Tensor packed = at::empty({G * H}, w.options());
  const float* src = w.data_ptr<float>();
  float* dst = packed.data_ptr<float>();
  for (int64_t j0 = 0; j0 < G; j0 += kTile) {
    const int64_t width = std::min(kTile, G - j0);
    for (int64_t k = 0; k < H; ++k) {
      for (int64_t j = 0; j < width; ++j) dst[j0 * H + k * width + j] = src[(j0 + j) * H + k];
    }
  }
  return packed;
}

void check(const Tensor& tensor, const char* name, int64_t dims) {
  if (tensor.device().type() != at::kCPU || tensor.scalar_type() != at::kFloat || tensor.dim() != dims) {
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(dims) +
                          "-dimensional float32 tensor on the CPU, got " + std::to_string(tensor.dim()) +
                          "-dimensional " + std::string(c10::toString(tensor.scalar_type())) + " on " +
                          tensor.device().str());
  }
}

// x (B, T, E), weights as nn.LSTM's layer: (hidden (B, T, H), signals (6, H, B, T) or None).
py::tuple lstm_trace_layer(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                           const Tensor& b_hh, bool keep_signals) {
  check(x, "x", 3);
  check(w_ih, "w_ih", 2);
  check(w_hh, "w_hh", 2);
  check(b_ih, "b_ih", 1);
  check(b_hh, "b_hh", 1);
  const int64_t B = x.size(0), T = x.size(1), E = x.size(2), H = w_hh.size(1);
  const int64_t G = 4 * H;
  if (w_hh.size(0) != G || w_ih.size(0) != G || w_ih.size(1) != E || b_ih.size(0) != G ||
      b_hh.size(0) != G) {
    throw py::value_error("weights: expected w_ih (4H, E), w_hh (4H, H), b_ih and b_hh (4H,) for E = " +
                          std::to_string(E) + ", got w_ih " + c10::str(w_ih.sizes()) + ", w_hh " +
                          c10::str(w_hh.sizes()));
  }
  Tensor hidden, signals;
  {
    py::gil_scoped_release no_gil;  // nothing below touches a Python object
    c10::InferenceMode inference;
    // All T steps' input products in one GEMM: (B T, 4H), biases included.
    const Tensor xw = at::addmm(b_ih + b_hh, x.reshape({B * T, E}), w_ih.t()).contiguous();
    const Tensor packed = pack(w_hh);
    hidden = at::empty({B, T, H}, x.options());
    if (keep_signals) signals = at::empty({6, H, B, T}, x.options());
    std::vector<float> pre(G), c(H), staged(kStage * 6 * H);
    run_layer(xw.data_ptr<float>(), packed.data_ptr<float>(), hidden.data_ptr<float>(),
              keep_signals ? signals.data_ptr<float>() : nullptr, B, T, H, pre.data(), c.data(),
              staged.data());
  }
  if (!keep_signals) return py::make_tuple(hidden, py::none());
  return py::make_tuple(hidden, signals);
}

}  // namespace

void bind_xray_trace(py::module_& m) {
  m.def("lstm_trace_layer", &lstm_trace_layer, py::arg("x"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("b_ih"), py::arg("b_hh"), py::arg("signals"),
        "One nn.LSTM layer over x (B, T, E) from zero state: (h (B, T, H), the signals i, f, g, o, c, h "
        "as (6, H, B, T) or None when `signals` is False)");
}
