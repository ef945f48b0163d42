// A decode batch's step in C++, with the GIL released: models/decode/sampler.py's `sample`, then
// models/decode/fused.py's `FusedCharLSTM.advance`.
//
// Why: from Python a step is ~25 small ATen calls, and each pays the interpreter and the Python argument
// parser (~135 us a step at batch 1, mostly overhead) while holding the GIL, so the API's event loop and
// the engine thread take turns. Here the same at:: ops run in the same order, with the same out= buffers,
// on the very tensors the Python step uses (the batch's `StepBuffers` for n active rows and the weights
// of `FusedCharLSTM`). Every kernel therefore sees the same inputs in the same layout, and the ids and
// state are bitwise those of the Python step: change one and you must change the other the same way, in
// the same commit (the rule in sampler.py's docstring; tests/models/test_native_step.py compares them
// bit for bit). Two parts are plain loops instead of ATen calls, because their result is exact by
// construction: the stable sort (unique), and the inverse-CDF choice (a double-accumulated cumsum, one
// float product, comparisons).
//
// The Stepper reads the Python structures' fields by name once, when it is made, and checks each one's
// dtype and shape there (checked_fields.h: ValueError naming the field): a renamed or reshaped buffer fails
// at once, not inside a step.
//
// Build and load: models/native/__init__.py. CPU tensors only; on CUDA DecodeBatch keeps its Python step.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "checked_fields.h"
#include "xray_trace.h"

namespace py = pybind11;
using at::Tensor;

namespace {

// One layer's gate pre-activations, as models/decode/fused.py's `Gates`: (i, f, o) side by side, then g.
struct Gates {
  Tensor all, sigmoid, i, f, o, g;
};

class Stepper {
 public:
  // `buffers`: a models.decode.buffers.StepBuffers of n rows; `weights`: the batch's FusedCharLSTM.
  // Reads and checks every field it will use, once: a step then touches no Python object.
  Stepper(const py::object& buffers_object, const py::object& weights_object) {
    const Fields weights(weights_object, "FusedCharLSTM");
    const int64_t V = weights.integer("vocab_size"), H = weights.integer("hidden_size");
    const int64_t L = weights.integer("num_layers");
    if (V < 1 || H < 1 || L < 1) weights.fail("vocab_size", "vocab_size, hidden_size and num_layers must be >= 1");
    input_table_ = weights.tensor("input_table", at::kFloat, {{V, 4 * H}, "(V, 4H)"});
    recurrent_0_ = weights.tensor("recurrent_0", at::kFloat, {{H, 4 * H}, "(H, 4H)"});
    head_weight_ = weights.tensor("head_weight", at::kFloat, {{H, V}, "(H, V)"});
    head_bias_ = weights.tensor("head_bias", at::kFloat, {{V}, "(V,)"});
    const std::vector<py::object> stacked = weights.sequence("stacked", weights.get("stacked"), L - 1);
    for (size_t layer = 0; layer < stacked.size(); ++layer) {
      const std::string name = "stacked[" + std::to_string(layer) + "]";
      const std::vector<py::object> pair = weights.sequence(name, stacked[layer], 2);
      stacked_weight_.push_back(weights.check(name + "[0]", pair[0], at::kFloat, {{2 * H, 4 * H}, "(2H, 4H)"}));
      stacked_bias_.push_back(weights.check(name + "[1]", pair[1], at::kFloat, {{4 * H}, "(4H,)"}));
    }

    const Fields buffers(buffers_object, "StepBuffers");
    const int64_t n = buffers.integer("rows");
    if (n < 0) buffers.fail("rows", "expected an int >= 0, got " + std::to_string(n));
    h_ = buffers.tensors("h", L, at::kFloat, {{n, H}, "(n, H)"});
    c_ = buffers.tensors("c", L, at::kFloat, {{n, H}, "(n, H)"});
    layer_inputs_ = buffers.tensors("layer_inputs", L - 1, at::kFloat, {{n, 2 * H}, "(n, 2H)"});
    for (const Tensor& all : buffers.tensors("gates", L, at::kFloat, {{n, 4 * H}, "(n, 4H)"})) {
      gates_.push_back({all, all.narrow(1, 0, 3 * H), all.narrow(1, 0, H), all.narrow(1, H, H),
                        all.narrow(1, 2 * H, H), all.narrow(1, 3 * H, H)});
    }
    tanh_c_ = buffers.tensor("tanh_c", at::kFloat, {{n, H}, "(n, H)"});

    const Fields sampling = buffers.nested("sampling");
    const Shape rows_v{{n, V}, "(n, V)"}, column{{n, 1}, "(n, 1)"};
    logits_ = sampling.tensor("logits", at::kFloat, rows_v);
    // The settings as sampler.settings_row lays them out: keep mask (V), temperature, top_p, has/no top_k.
    const Tensor settings = sampling.tensor("settings", at::kFloat, {{n, V + 4}, "(n, V + 4)"});
    keep_k_ = settings.narrow(1, 0, V);
    temperature_ = settings.narrow(1, V, 1);
    top_p_ = settings.narrow(1, V + 1, 1);
    has_k_ = settings.narrow(1, V + 2, 1);
    no_k_ = settings.narrow(1, V + 3, 1);
    uniforms_ = sampling.tensor("uniforms", at::kFloat, {{n, -1}, "(n, W)"});
    sorted_ = sampling.tensor("sorted", at::kFloat, rows_v);
    order_ = sampling.tensor("order", at::kLong, rows_v);
    scaled_ = sampling.tensor("scaled", at::kFloat, rows_v);
    probs_ = sampling.tensor("probs", at::kFloat, rows_v);
    mass_before_ = sampling.tensor("mass_before", at::kFloat, rows_v);
    outside_top_p_ = sampling.tensor("outside_top_p", at::kBool, rows_v);
    mass_k_ = sampling.tensor("mass_k", at::kFloat, column);
    ids_ = sampling.tensor("ids", at::kLong, column);
    // step() copies the ids straight out of ids_flat's memory.
    if (!ids_.is_contiguous()) sampling.fail("ids", "expected a contiguous tensor");
    ids_flat_ = ids_.select(1, 0);
    // sort_rows() and choose() walk rows through raw pointers: each row's columns must be adjacent.
    for (const auto& [name, rows] : {std::pair<const char*, const Tensor*>{"logits", &logits_},
                                     {"sorted", &sorted_}, {"order", &order_}, {"probs", &probs_}}) {
      if (rows->stride(1) != 1) sampling.fail(name, "expected adjacent columns (stride 1 along V)");
    }
  }

  // One step of `DecodeBatch.step` for the n rows: the chosen ids, and new state and logits in place.
  // The flags are sampler.Needs: every row greedy, and whether any row needs temperature scaling,
  // top-k or top-p (the Python step skips those ops alike when no row needs them).
  std::vector<int64_t> step(int64_t column, bool all_greedy, bool scaled, bool top_k, bool top_p) {
    TORCH_CHECK(column >= 0 && column < uniforms_.size(1),
                "Stepper.step: column ", column, " outside the uniform window of ", uniforms_.size(1));
    // Nothing below touches a Python object: the tensors are held here, so the GIL can go.
    py::gil_scoped_release no_gil;
    // Skips the autograd layer of the dispatcher (nothing here requires grad): the same CPU kernels
    // run on the same tensors, ~20 % less time per step at batch 1-8. (From Python, entering
    // inference mode costs more than it saves; see DecodeBatch.step.)
    c10::InferenceMode inference_mode;
    if (all_greedy) {
      at::argmax_out(ids_, logits_, 1, /*keepdim=*/true);
    } else {
      sample(column, scaled, top_k, top_p);
    }
    const int64_t* first = ids_flat_.const_data_ptr<int64_t>();
    std::vector<int64_t> ids(first, first + ids_flat_.size(0));
    advance();
    return ids;
  }

 private:
  // sampler.sample: the inverse CDF at each row's uniform over its sorted, filtered distribution.
  void sample(int64_t column, bool scaled, bool top_k, bool top_p) {
    sort_rows();
    Tensor logits = sorted_;
    if (scaled) logits = at::div_out(scaled_, sorted_, temperature_);
    at::softmax_out(probs_, logits, 1);
    if (top_k) {
      probs_.mul_(keep_k_);
      at::sum_out(mass_k_, probs_, /*dim=*/1, /*keepdim=*/true);
      at::addcmul_out(mass_k_, no_k_, mass_k_, has_k_);
      probs_.div_(mass_k_);
    }
    if (top_p) {
      at::cumsum_out(mass_before_, probs_, 1);
      mass_before_.sub_(probs_);
      at::ge_out(outside_top_p_, mass_before_, top_p_);
      probs_.masked_fill_(outside_top_p_, at::Scalar(0));
    }
    choose(column);
  }

  // at::sort_out(sorted, order, logits, stable=true, dim=1, descending=true), row by row. A stable
  // sort's result is unique (NaN first, as torch.sort puts it), so this is that op bit for bit; it is
  // here because ATen's sort costs ~3 us a row of 80, the dearest op of a step at batch 32.
  //
  // Each element becomes one 64-bit key, its value's bits made to order as unsigned integers order
  // (high half) and its index reversed (low half): a plain descending sort of the keys puts larger
  // values first and, among equal values, the lower index first, which is what stability means here,
  // with no comparator indirection and no allocation per row.
  void sort_rows() {
    const int64_t n = logits_.size(0), V = logits_.size(1);
    TORCH_CHECK(V <= std::numeric_limits<uint32_t>::max(), "Stepper: vocabulary too large");
    const float* logits = logits_.const_data_ptr<float>();
    float* sorted = sorted_.mutable_data_ptr<float>();
    int64_t* order = order_.mutable_data_ptr<int64_t>();
    const int64_t logits_stride = logits_.stride(0), sorted_stride = sorted_.stride(0);
    const int64_t order_stride = order_.stride(0);
    keys_.resize(V);
    for (int64_t r = 0; r < n; ++r) {
      const float* row = logits + r * logits_stride;
      for (int64_t j = 0; j < V; ++j) {
        keys_[j] = (static_cast<uint64_t>(sortable_bits(row[j])) << 32) |
                   (std::numeric_limits<uint32_t>::max() - static_cast<uint32_t>(j));
      }
      std::sort(keys_.begin(), keys_.end(), std::greater<uint64_t>());
      for (int64_t j = 0; j < V; ++j) {
        const int64_t index = std::numeric_limits<uint32_t>::max() - static_cast<uint32_t>(keys_[j]);
        sorted[r * sorted_stride + j] = row[index];
        order[r * order_stride + j] = index;
      }
    }
  }

  // A float's bits as an unsigned integer that orders as torch.sort orders floats: -0.0 equal to 0.0
  // (both map to 0.0's key) and every NaN above +inf (one key for all, so NaNs keep index order).
  static uint32_t sortable_bits(float value) {
    if (std::isnan(value)) return std::numeric_limits<uint32_t>::max();
    uint32_t bits;
    const float canonical = value == 0.0f ? 0.0f : value;
    std::memcpy(&bits, &canonical, sizeof bits);
    // Negative floats order backwards as integers: flip all their bits; positive ones go above them.
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }

  // The Python step's last six ops in one pass per row: cdf = cumsum(probs) (ATen's CPU cumsum adds
  // in double and rounds each sum to float, as here); target = uniform * cdf[V-1]; the index is the
  // first column whose cdf exceeds target, clamped to the last non-zero probability (the Python step
  // does that by setting cdf to inf from there on); the id is order[index]. Integer and single float
  // operations only, so the same bits as cumsum, mul, eq, masked_fill, searchsorted and gather.
  void choose(int64_t column) {
    const int64_t n = probs_.size(0), V = probs_.size(1);
    const float* probs = probs_.const_data_ptr<float>();
    const int64_t* order = order_.const_data_ptr<int64_t>();
    const float* uniform = uniforms_.const_data_ptr<float>() + column * uniforms_.stride(1);
    int64_t* ids = ids_flat_.mutable_data_ptr<int64_t>();
    const int64_t probs_stride = probs_.stride(0), order_stride = order_.stride(0);
    const int64_t uniform_stride = uniforms_.stride(0);
    cdf_buffer_.resize(V);
    for (int64_t r = 0; r < n; ++r) {
      const float* p = probs + r * probs_stride;
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) {
        sum += p[j];
        cdf_buffer_[j] = static_cast<float>(sum);
      }
      const float target = uniform[r * uniform_stride] * cdf_buffer_[V - 1];
      // NaN or infinite logits (a broken model: temperatures too cold to overflow are refused before
      // this) leave no distribution; the PyTorch step's searchsorted then indexes out of range, so fail
      // the same way instead of quietly choosing the last character.
      TORCH_CHECK(!std::isnan(target), "Stepper: row ", r, " has no distribution (NaN or infinite logits)");
      int64_t j = 0;
      while (j < V - 1 && p[j + 1] != 0.0f && !(cdf_buffer_[j] > target)) ++j;
      ids[r] = order[r * order_stride + j];
    }
  }

  // FusedCharLSTM.advance (with fused.cell): feed the chosen ids through every layer, then the head.
  void advance() {
    for (size_t layer = 0; layer < gates_.size(); ++layer) {
      Gates& gates = gates_[layer];
      if (layer == 0) {
        at::index_select_out(gates.all, input_table_, 0, ids_flat_);
        gates.all.addmm_(h_[0], recurrent_0_);
      } else {
        at::addmm_out(gates.all, stacked_bias_[layer - 1], layer_inputs_[layer - 1], stacked_weight_[layer - 1]);
      }
      gates.sigmoid.sigmoid_();
      gates.g.tanh_();
      c_[layer].mul_(gates.f).addcmul_(gates.i, gates.g);
      at::tanh_out(tanh_c_, c_[layer]);
      at::mul_out(h_[layer], gates.o, tanh_c_);
    }
    at::addmm_out(logits_, head_bias_, h_.back(), head_weight_);
  }

  // Views of the batch's rows (n, ...): next logits, sampling settings, uniforms, state.
  Tensor logits_, keep_k_, temperature_, top_p_, has_k_, no_k_, uniforms_;
  std::vector<Tensor> h_, c_, layer_inputs_;
  // Scratch, overwritten every step.
  std::vector<Gates> gates_;
  Tensor tanh_c_, sorted_, order_, scaled_, probs_, mass_before_, outside_top_p_, mass_k_, ids_, ids_flat_;
  // FusedCharLSTM's weights.
  Tensor input_table_, recurrent_0_, head_weight_, head_bias_;
  std::vector<Tensor> stacked_weight_, stacked_bias_;
  // sort_rows' and choose()'s row buffers, kept to spare an allocation a step.
  std::vector<uint64_t> keys_;
  std::vector<float> cdf_buffer_;
};

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "DecodeBatch's step in C++ (the same ATen ops as models/decode/) and the X-ray's traced "
            "LSTM layer, with the GIL released";
  // module_local: two builds of this file loaded in one process (a test building into a temporary
  // directory) must not clash in pybind11's registry of C++ types.
  py::class_<Stepper>(m, "Stepper", py::module_local())
      .def(py::init<const py::object&, const py::object&>(), py::arg("buffers"), py::arg("weights"))
      .def("step", &Stepper::step, py::arg("column"), py::arg("all_greedy"), py::arg("scaled"),
           py::arg("top_k"), py::arg("top_p"));
  bind_xray_trace(m);  // the X-ray's traced LSTM layer: xray_trace.cpp
}
